/* The control thread of `tollgate run`: builds generations from the identity files and
 * publishes them to the workers, watches the files, serves the admin endpoint, and handles
 * signals (SIGTERM/SIGINT: drain then exit; SIGHUP: reload the identity now). */
#ifndef TOLLGATE_CONTROL_H
#define TOLLGATE_CONTROL_H

#include "tollgate/config.h"

/* Runs until the process is told to stop. Returns the process exit code. */
int tg_control_run(const struct tg_config *cfg);

#endif
