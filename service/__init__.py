"""pelosync: sync Peloton workouts everywhere else."""

__version__ = "0.1.0"
