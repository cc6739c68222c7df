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
   It listens on containers/<id>/attach.sock (cimg_monitor_attach) and, with
   spec->process.stdin_open, holds the write end of the container's stdin (a pipe, or the
   pty's input) for the clients attached there. attach_fd >= 0 is a connected stream socket
   that is the first client, attached before the container starts (start -a): the caller
   keeps its own fd, and the monitor a duplicate.
   Returns once the container's command has been executed: 0 with *pid; 0 with *exec_error
   126/127 and *exec_message (the caller's) when it could not be; -1 with err when its setup
   failed. The spec must stay valid only until return (the monitor has its own copy). */
int cimg_monitor_start (struct cimg_store *s, struct cimg_container *c,
                        const struct cimg_spec *spec, int attach_fd, pid_t *pid, int *exec_error,
                        char **exec_message, cimg_error_t *err);

/* The attach protocol. The monitor sends frames of the container's output: an 8-byte header
   {stream (1 stdout, 2 stderr), 0, 0, 0, length as a big-endian uint32} then length bytes, as
   Docker's multiplexed attach stream (with a tty everything is stream 1). The client's bytes
   are the container's stdin (when it was started with -i); shutdown(SHUT_WR) is its EOF, which
   closes the container's stdin only when Config.StdinOnce is set. The monitor closes every
   client once the container's exit is recorded. */
#define CIMG_ATTACH_HEADER 8

/* Connect to the monitor of a running container c: a connected socket (O_CLOEXEC), or -1
   with err (ENOENT/ECONNREFUSED: no monitor listening). */
int cimg_monitor_attach (struct cimg_store *s, const struct cimg_container *c, cimg_error_t *err);

/* The container's log (containers/<id>/ctr.log, Docker's json-file lines), for a foreground
   run that writes the log as a monitor does. */
struct cimg_log;
struct cimg_log *cimg_log_open (struct cimg_store *s, const char *id, cimg_error_t *err);
/* Append output (cut into lines of at most 16 KiB, one record each, with the time of the
   line's arrival); a cimg_output_fn. */
void cimg_log_write (void *log, int stream, const char *buf, size_t n);
/* Write what is left of unterminated lines, and close. */
void cimg_log_close (struct cimg_log *lg);

/* The monitor's PID when it is alive (state MonitorPid with a matching start time), else 0. */
pid_t cimg_monitor_pid (const struct cimg_container *c);

#endif
