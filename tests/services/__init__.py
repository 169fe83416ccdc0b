"""Real servers for the service tests.

base.py holds what they share; mariadb.py, postgres.py and slurm.py start one server each;
fixtures.py exposes them to pytest.
"""
