"""unlearnd.daemon: the long-running service.

inbox (folders and moves) -> bundle (safe reading) -> validate (schema, images, hash) ->
intake (the loop, watchdog hints) -> sink (registry request + job) -> worker (lease,
heartbeat, pipeline, exactly-once commit) ; housekeeping (APScheduler) ; service (`serve`).
"""
