/* The control thread of `tollgate run`: builds generations and publishes them to the
 * workers, serves the admin endpoint, and handles signals (SIGTERM/SIGINT: drain then exit;
 * SIGHUP: reload now). Static mode: generations come from the identity files, which are
 * watched. Control-plane mode (control_plane: in the config): the key is made in memory, the
 * identity comes from the control plane's answer to our CSR and is renewed before it
 * expires, and every accepted push builds a new generation (ACK) or is refused (NACK); the
 * workers start listening once the first generation exists.
 *
 * Exit status: 0 after a signal (drained), 1 on a failure, TG_EXIT_DRAINED after POST /drain
 * (drained at the request of a local client: the supervisor is to start a fresh sidecar). */
#ifndef TOLLGATE_CONTROL_H
#define TOLLGATE_CONTROL_H

#include "tollgate/config.h"

#define TG_EXIT_DRAINED 3

/* Runs until the process is told to stop. Returns the process exit code. Takes its own
 * reference on cfg. The config file is watched too: a change to what a generation holds
 * (identity files' contents, trust domains, TLS settings, authorization, revocation, mesh
 * table, workload) is applied live; a change to listeners, admin, workers, buffers or the
 * identity file paths is refused with a log line saying it needs a restart. */
int tg_control_run(struct tg_config *cfg);

#endif
