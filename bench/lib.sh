# bench/lib.sh — shell functions the bench scripts share (sourced, not run).
# shellcheck shell=bash

# stop_pids TRIES PID...: SIGTERM to every PID, then up to TRIES waits of 0.1 s for them all to
# exit, then SIGKILL to any still there. Only the PIDs given; errors for gone ones are ignored.
stop_pids() {
    local tries=$1 p
    shift
    for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
    for ((try = 0; try < tries; try++)); do
        local left=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
}
