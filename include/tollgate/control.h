/* The control thread of `tollgate run`: builds generations from the identity files and
 * publishes them to the workers, watches the files, serves the admin endpoint, and handles
 * signals (SIGTERM/SIGINT: drain then exit; SIGHUP: reload the identity now). */
#ifndef TOLLGATE_CONTROL_H
#define TOLLGATE_CONTROL_H

#include "tollgate/config.h"

/* Runs until the process is told to stop. Returns the process exit code. Takes its own
 * reference on cfg. The config file is watched too: a change to what a generation holds
 * (identity files' contents, trust domains, TLS settings, authorization, revocation, mesh
 * table, workload) is applied live; a change to listeners, admin, workers, buffers or the
 * identity file paths is refused with a log line saying it needs a restart. */
int tg_control_run(struct tg_config *cfg);

#endif
