/* store: containers' records (containers/<64-hex id>/): config.json (the resolved run spec, as
   Docker's inspect names its fields), state.json, and the write layer (upper/, work/,
   merged/). Used by run and by the lifecycle commands; knows nothing of the runtime. */
#ifndef CIMG_STORE_CONTAINER_H
#define CIMG_STORE_CONTAINER_H

#include "store/store.h"

struct cimg_container
{
  char id[65];
  json_t *config; /* config.json: Id, Name ("/name"), Image, ImageName, Created, Path, Args,
                     Config, HostConfig, … */
  json_t *state;  /* state.json: Status, Pid, PidStart, PidIno, ExitCode, StartedAt,
                     FinishedAt, OOMKilled */
  bool brief;     /* from cimg_container_list_brief's summaries: config and state hold only
                     the fields ps shows */
};

void cimg_container_free (struct cimg_container *c);
void cimg_container_freep (struct cimg_container **c);
#define cleanup_container __attribute__ ((cleanup (cimg_container_freep)))
void cimg_containers_free (struct cimg_container **v, size_t n);

/* Create a container record: ID (64 hex the caller chose, e.g. to put the short ID in the
   config as its hostname; NULL: a new random one), name (NULL: a random two-word name), its
   directory with upper/, work/ and merged/, and config.json (config, which the caller built,
   plus Id, Name and Created; config is borrowed). A record without state.json is "created".
   Names are unique: a taken name is an error that says which container has it. */
struct cimg_container *cimg_container_create (struct cimg_store *s, const char *id,
                                              const char *name, json_t *config, cimg_error_t *err);

/* Find by full ID, name (with or without the leading "/"), or unique ID prefix. An ambiguous
   prefix is an error that says so; so is no match ("No such container: x"). */
struct cimg_container *cimg_container_find (struct cimg_store *s, const char *ref,
                                            cimg_error_t *err);

/* Every container, newest first. */
int cimg_container_list (struct cimg_store *s, struct cimg_container ***out, size_t *n,
                         cimg_error_t *err);

/* Every container, newest first, for `ps`. A record is read from its summaries (the
   user.cimg.ps xattrs that config.json and state.json carry, set whenever they are written;
   see store/container.c) when they are there (state.json's unless it has none, "created") and
   intact: brief is set, its config holds only Name, Image, ImageName, Created, Path and Args,
   its state only Status, Pid, PidStart, PidIno, ExitCode, StartedAt, FinishedAt, OOMKilled,
   Restarting, MonitorPid and MonitorStart, as they are on disk now. Otherwise it is read in
   full, as cimg_container_list does, and its summaries set if its lock is free. For showing
   records; take those to change or run from cimg_container_find. */
int cimg_container_list_brief (struct cimg_store *s, struct cimg_container ***out, size_t *n,
                               cimg_error_t *err);

/* The name without its leading "/". */
const char *cimg_container_name (const struct cimg_container *c);
/* "containers/<id>" (newly allocated), relative to the store root. */
char *cimg_container_dir (const struct cimg_container *c);

/* "created", "running" or "exited". A record that says running but whose process is gone (or
   whose PID now belongs to another process) is reported as exited. */
const char *cimg_container_status (const struct cimg_container *c);
/* The container's process (in the caller's PID namespace) when it is running, else 0. */
pid_t cimg_container_pid (const struct cimg_container *c);
/* Exit code (255 for a container whose process vanished without one being recorded). */
int cimg_container_exit_code (const struct cimg_container *c);

/* Take the per-container lock (flock on its directory); returns an fd to close to release it. */
int cimg_container_lock (struct cimg_store *s, const struct cimg_container *c, cimg_error_t *err);
/* Reread state.json. */
int cimg_container_reload (struct cimg_store *s, struct cimg_container *c, cimg_error_t *err);

/* Record a started process / an exit, under the container's lock, atomically (temp file and
   rename). Not fsynced: a state describes processes, which a crash ends anyway; a record
   that still says running after one is reported exited, as its PID is gone. */
int cimg_container_set_running (struct cimg_store *s, struct cimg_container *c, pid_t pid,
                                cimg_error_t *err);
/* As cimg_container_set_running, keeping cgroup_dirs (the runtime's cimg_run_hooks.started
   gives them; NULL: none) as the state's CgroupPaths, so that exec joins them without looking
   up the cgroup mounts (it validates them before use). */
int cimg_container_set_running_in (struct cimg_store *s, struct cimg_container *c, pid_t pid,
                                   char *const *cgroup_dirs, cimg_error_t *err);
int cimg_container_set_exited (struct cimg_store *s, struct cimg_container *c, int exit_code,
                               bool oom_killed, cimg_error_t *err);

/* Set fields of state.json (borrowed; merged over what is there), under the container's lock,
   atomically. set_running and set_exited keep the fields they do not set, but for
   CgroupPaths, which set_running writes from this start's directories or drops. */
int cimg_container_update_state (struct cimg_store *s, struct cimg_container *c, json_t *fields,
                                 cimg_error_t *err);
/* Start time of pid (field 22 of /proc/PID/stat, clock ticks since boot); 0 when it is gone. A
   PID with another start time is another process. */
int64_t cimg_pid_start_time (pid_t pid);

/* Remove containers/<id> (the caller has made sure nothing of it runs or is mounted). */
int cimg_container_remove (struct cimg_store *s, struct cimg_container *c, cimg_error_t *err);

/* Read a small file at path (absolute, inside the image) from a stack of layer directories
   (fds, top-most first), as the overlay would show it: the top-most layer that has the path
   wins, a whiteout hides it, symlinks resolve inside each layer. Returns 0, 1 when absent
   (*out NULL), or -1 with err. */
int cimg_layers_read_file (const int *layer_fds, size_t n, const char *path, size_t max, char **out,
                           cimg_error_t *err);

#endif
