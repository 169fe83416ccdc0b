"""Real servers for the service tests: servers.py starts them, fixtures.py exposes them to pytest."""
