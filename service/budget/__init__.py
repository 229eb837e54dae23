"""The Peloton request budget shared by every replica (see :mod:`service.budget.service`)."""
