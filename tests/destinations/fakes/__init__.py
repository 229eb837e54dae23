"""Loopback fakes of the fitness services (Strava, intervals.icu, Runalyze, Garmin Connect)
and the uvicorn harness that serves them in-process."""
