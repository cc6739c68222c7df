/* runtime: the per-container monitor of detached containers (cimg run -d, cimg start). */
#ifndef CIMG_RUNTIME_MONITOR_H
#define CIMG_RUNTIME_MONITOR_H

#include "runtime/runtime.h"
#include "store/container.h"

/* Docker's restart policies (--restart). */
enum cimg_restart_kind
{
  CIMG_RESTART_NO = 0,
  CIMG_RESTART_ON_FAILURE,
  CIMG_RESTART_ALWAYS,
  CIMG_RESTART_UNLESS_STOPPED,
};

/* Parse "no", "on-failure[:N]", "always", "unless-stopped". Returns 0, or -1 with err. */
int cimg_restart_parse (const char *s, enum cimg_restart_kind *kind, int *max_retries,
                        cimg_error_t *err);

/* Start a monitor for container c (its record's HostConfig.RestartPolicy {Name,
   MaximumRetryCount} and AutoRemove say what to do when it exits): a process double-forked
   from the caller, in a session of its own, with /dev/null as stdio and no other fd of the
   caller's, that runs spec with cimg_runtime_run (it is the container's parent: with
   PDEATHSIG the container dies with it), writes the container's stdout and stderr as JSON lines
   {"log","stream","time"} to containers/<id>/ctr.log, records MonitorPid, running and exited
   (exit code, FinishedAt, OOMKilled) in state.json, applies the restart policy (not after a
   stop or kill: state ManualStop) and, with AutoRemove, removes the record at the end.
   Returns once the container's command has been executed: 0 with *pid; 0 with *exec_error
   126/127 and *exec_message (the caller's) when it could not be; -1 with err when its setup
   failed. The spec must stay valid only until return (the monitor has its own copy). */
int cimg_monitor_start (struct cimg_store *s, struct cimg_container *c,
                        const struct cimg_spec *spec, pid_t *pid, int *exec_error,
                        char **exec_message, cimg_error_t *err);

/* The monitor's PID when it is alive (state MonitorPid with a matching start time), else 0. */
pid_t cimg_monitor_pid (const struct cimg_container *c);

#endif
