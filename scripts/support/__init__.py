"""What scripts/bench and scripts/drills share: free ports, psql, child processes
stopped by PID, HTTP probes (readiness by /readyz) and waiting with a timeout.
Standard library only; import as `from support.<module> import ...` with
scripts/ on sys.path."""
