"""The public names of the test servers under their first import path, for code that still uses it.

New code imports from the modules themselves: `base.py` (what all servers share), `mariadb.py`,
`postgres.py` and `slurm.py`.
"""

from __future__ import annotations

from tests.services.base import (TAG_VARIABLE, ServiceError, free_port, missing_binaries, process_alive,
                                 tagged_processes)
from tests.services.mariadb import MariaDBInfo, mariadb_server
from tests.services.postgres import PostgresInfo, postgres_server
from tests.services.slurm import SlurmInfo, slurm_cluster

__all__ = [
    "TAG_VARIABLE",
    "MariaDBInfo",
    "PostgresInfo",
    "ServiceError",
    "SlurmInfo",
    "free_port",
    "mariadb_server",
    "missing_binaries",
    "process_alive",
    "postgres_server",
    "slurm_cluster",
    "tagged_processes",
]
