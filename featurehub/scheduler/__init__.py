"""`featurehub schedule`: runs each view's materialization on its schedule (docs/scheduler.md).

ticks: which runs are due, by schedule, watermark and catch-up policy; jobs: what the loop
runs (views; feature-service monitors plug in as more jobs); loop: the loop itself, with
leases, retries and a clean stop on SIGTERM.
"""
