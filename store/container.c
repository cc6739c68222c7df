/* Containers' records: containers/<id>/{config.json,state.json,upper,work,merged}. */
#include "store/container.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "store/store-internal.h"

#define MAX_RECORD (16 << 20)

void
cimg_container_free (struct cimg_container *c)
{
  if (c == NULL)
    return;
  json_decref (c->config);
  json_decref (c->state);
  free (c);
}

void
cimg_container_freep (struct cimg_container **c)
{
  cimg_container_free (*c);
}

void
cimg_containers_free (struct cimg_container **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    cimg_container_free (v[i]);
  free (v);
}

const char *
cimg_container_name (const struct cimg_container *c)
{
  const char *n = cimg_json_str (c->config, "Name");
  if (n == NULL)
    return "";
  return n[0] == '/' ? n + 1 : n;
}

char *
cimg_container_dir (const struct cimg_container *c)
{
  return xasprintf ("containers/%s", c->id);
}

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot): a PID with another start
   time is another process. 0 when the process is gone. */
static int64_t
pid_start_time (pid_t pid)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: count from the last ')'. */
  char *p = strrchr (buf, ')');
  if (p == NULL)
    return 0;
  p++;
  for (int field = 3; field < 22 && p; field++)
    p = strchr (p + 1, ' ');
  return p ? strtoll (p + 1, NULL, 10) : 0;
}

#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

/* The inode number of pid's pidfd where pidfds live on pidfs (Linux 6.9+): unique for each
   process of a boot, never reused, so, like the start time, it tells a PID that was reused
   from the process recorded, and checking it costs less than formatting /proc/PID/stat (about
   half, for each running container `ps` looks at). 0 when it cannot tell (no pidfs: pidfds
   then share one anonymous inode). */
static int64_t
pid_ino (pid_t pid)
{
  int fd = (int)syscall (SYS_pidfd_open, pid, 0);
  if (fd < 0)
    return 0;
  struct statfs sfs;
  struct stat st;
  int64_t ino = 0;
  if (fstatfs (fd, &sfs) == 0 && sfs.f_type == PID_FS_MAGIC && fstat (fd, &st) == 0)
    ino = (int64_t)st.st_ino;
  close (fd);
  return ino;
}

static bool
process_alive (const struct cimg_container *c)
{
  pid_t pid = (pid_t)cimg_json_int (c->state, "Pid");
  if (pid <= 0)
    return false;
  int64_t want_ino = cimg_json_int (c->state, "PidIno");
  if (want_ino > 0)
    {
      int fd = (int)syscall (SYS_pidfd_open, pid, 0);
      if (fd >= 0)
        {
          struct stat st;
          bool same = fstat (fd, &st) == 0 && (int64_t)st.st_ino == want_ino;
          close (fd);
          return same;
        }
      /* ESRCH: gone; EINVAL: the PID is now a thread's, another process. Anything else (no
         pidfd_open here) falls back to the start time. */
      if (errno == ESRCH || errno == EINVAL)
        return false;
    }
  int64_t want = cimg_json_int (c->state, "PidStart");
  int64_t got = pid_start_time (pid);
  return got != 0 && (want == 0 || want == got);
}

const char *
cimg_container_status (const struct cimg_container *c)
{
  const char *s = cimg_json_str (c->state, "Status");
  if (s == NULL)
    return "created";
  if (strcmp (s, "running") == 0)
    return process_alive (c) ? "running" : "exited";
  return s;
}

pid_t
cimg_container_pid (const struct cimg_container *c)
{
  return strcmp (cimg_container_status (c), "running") == 0 ? (pid_t)cimg_json_int (c->state, "Pid")
                                                            : 0;
}

int
cimg_container_exit_code (const struct cimg_container *c)
{
  const char *s = cimg_json_str (c->state, "Status");
  if (s && strcmp (s, "running") == 0 && !process_alive (c))
    return 255;
  return (int)cimg_json_int (c->state, "ExitCode");
}

/* ---------------------------------------------------------------- the summary ps reads */

/* What `ps` shows of a record is kept, in a line format read without a JSON parser, in an
   extended attribute (user.cimg.ps) of the file it comes from: a few fields on config.json,
   the fields the status needs on state.json. Parsing the two JSON files of each container was
   ~85% of a `ps` with many containers; two getxattr calls replace opening and parsing them.
   The state's summary is set on the temporary file before the rename that makes it
   state.json, so it is replaced in the same atomic step as the state and can never be staler
   than it (a state.json written by anything else, an older cimg or a hand edit, simply has
   none); config.json is written once. A summary is a cache, never the truth: a missing or
   damaged one (a checksum tells) costs only the JSON reads, after which `ps` sets it when it
   can take the container's lock at once; a file system without user xattrs always takes the
   JSON path. A separate summary file would need two more stats to prove that it still
   matches the JSON beside it.

     cimg-ps 1 config|state          which file it belongs to
     c|s <key> <type> [<value>]      a field of config.json (c) or state.json (s)
     end <FNV-1a 64 of every byte before this line, 16 hex>

   type: s string, i integer, t true, f false, n null, A an empty array, a a string appended
   to the array. Strings escape "\" as "\\" and a newline as "\n"; every other byte is as is.
   A record whose fields have other types (a real number, an object), or whose summary would
   not fit in an xattr (a very long command), gets none. */

#define SUMMARY_XATTR "user.cimg.ps"
/* ext4 keeps all of a file's xattrs in one block. */
#define SUMMARY_MAX 3072

static const char *const summary_config_keys[]
    = { "Name", "Image", "ImageName", "Created", "Path", "Args" };
static const char *const summary_state_keys[]
    = { "Status",     "Pid",       "PidStart",   "PidIno",     "ExitCode",    "StartedAt",
        "FinishedAt", "OOMKilled", "Restarting", "MonitorPid", "MonitorStart" };

static uint64_t
fnv1a64 (const char *p, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++)
    {
      h ^= (unsigned char)p[i];
      h *= 0x100000001b3ULL;
    }
  return h;
}

struct sbuf
{
  char *p;
  size_t len, cap;
  bool bad; /* over SUMMARY_MAX, or a field that cannot be written */
};

static void
sb_add (struct sbuf *b, const char *s, size_t n)
{
  if (b->bad)
    return;
  if (b->len + n > SUMMARY_MAX)
    {
      b->bad = true;
      return;
    }
  if (b->len + n + 1 > b->cap)
    {
      b->cap = (b->len + n + 1) * 2;
      b->p = xrealloc (b->p, b->cap);
    }
  memcpy (b->p + b->len, s, n);
  b->len += n;
}

static void
sb_str (struct sbuf *b, const char *s)
{
  sb_add (b, s, strlen (s));
}

static void
sb_escaped (struct sbuf *b, const char *s, size_t n)
{
  size_t run = 0;
  for (size_t i = 0; i < n; i++)
    {
      if (s[i] != '\\' && s[i] != '\n')
        continue;
      sb_add (b, s + run, i - run);
      sb_str (b, s[i] == '\\' ? "\\\\" : "\\n");
      run = i + 1;
    }
  sb_add (b, s + run, n - run);
}

static void
sb_field (struct sbuf *b, char section, const char *key, json_t *v)
{
  char head[64];
  snprintf (head, sizeof head, "%c %s ", section, key);
  if (json_is_string (v))
    {
      sb_str (b, head);
      sb_str (b, "s ");
      sb_escaped (b, json_string_value (v), json_string_length (v));
      sb_str (b, "\n");
    }
  else if (json_is_integer (v))
    {
      char num[32];
      snprintf (num, sizeof num, "i %lld\n", (long long)json_integer_value (v));
      sb_str (b, head);
      sb_str (b, num);
    }
  else if (json_is_boolean (v) || json_is_null (v))
    {
      sb_str (b, head);
      sb_str (b, json_is_true (v) ? "t\n" : json_is_false (v) ? "f\n" : "n\n");
    }
  else if (json_is_array (v))
    {
      sb_str (b, head);
      sb_str (b, "A\n");
      size_t i;
      json_t *e;
      json_array_foreach (v, i, e)
      {
        if (!json_is_string (e))
          {
            b->bad = true;
            return;
          }
        sb_str (b, head);
        sb_str (b, "a ");
        sb_escaped (b, json_string_value (e), json_string_length (e));
        sb_str (b, "\n");
      }
    }
  else
    b->bad = true;
}

/* The summary of obj, config.json's (section 'c') or state.json's ('s'); NULL when it cannot be
   written. Freed by the caller. */
static char *
summary_text (json_t *obj, char section, size_t *len)
{
  const char *const *keys = section == 'c' ? summary_config_keys : summary_state_keys;
  size_t n = section == 'c' ? ARRAY_SIZE (summary_config_keys) : ARRAY_SIZE (summary_state_keys);
  struct sbuf b = { 0 };
  sb_str (&b, section == 'c' ? "cimg-ps 1 config\n" : "cimg-ps 1 state\n");
  for (size_t i = 0; i < n; i++)
    {
      json_t *v = json_object_get (obj, keys[i]);
      if (v)
        sb_field (&b, section, keys[i], v);
    }
  char end[32];
  snprintf (end, sizeof end, "end %016llx\n",
            (unsigned long long)(b.bad ? 0 : fnv1a64 (b.p, b.len)));
  sb_str (&b, end);
  if (b.bad)
    {
      free (b.p);
      return NULL;
    }
  *len = b.len;
  return b.p;
}

/* Set once the store's file system refused user xattrs (for this process): ps then reads every
   record's JSON without trying to read or set summaries, costing no more than before them. */
static bool no_xattrs;

/* Best effort (without a summary ps reads the JSON): on an open file, or on path. */
static void
set_summary (int fd, const char *path, json_t *obj, char section)
{
  size_t len;
  cleanup_free char *text = summary_text (obj, section, &len);
  if (text && fd >= 0)
    no_xattrs |= fsetxattr (fd, SUMMARY_XATTR, text, len, 0) < 0 && errno == ENOTSUP;
  else if (text && path)
    no_xattrs |= lsetxattr (path, SUMMARY_XATTR, text, len, 0) < 0 && errno == ENOTSUP;
}

/* The absolute path of containers/<id>/<file> (xattr calls have no *at form everywhere). */
static char *
record_path (struct cimg_store *s, const char *id, const char *file)
{
  const char *root = cimg_store_root (s);
  if (root[0] == '/')
    return xasprintf ("%s/containers/%s/%s", root, id, file);
  cleanup_free char *abs = realpath (root, NULL);
  return abs ? xasprintf ("%s/containers/%s/%s", abs, id, file) : NULL;
}

/* Undo the escaping in place; false on an escape the writer does not make. */
static bool
unescape (char *s, size_t *len)
{
  char *w = s;
  for (char *r = s; *r; r++)
    {
      if (*r != '\\')
        {
          *w++ = *r;
          continue;
        }
      r++;
      if (*r == '\\')
        *w++ = '\\';
      else if (*r == 'n')
        *w++ = '\n';
      else
        return false;
    }
  *w = '\0';
  *len = (size_t)(w - s);
  return true;
}

/* One "c|s key type [value]" line (NUL-terminated, without its newline) into obj. */
static bool
summary_field (char *line, json_t *obj)
{
  if (line[1] != ' ')
    return false;
  char *key = line + 2, *sp = strchr (key, ' ');
  if (sp == NULL || sp == key)
    return false;
  *sp = '\0';
  char type = sp[1];
  char *val = sp[2] == ' ' ? sp + 3 : NULL;
  if (type == '\0' || (val == NULL && sp[2] != '\0'))
    return false;
  size_t len;
  json_t *v;
  switch (type)
    {
    case 's':
    case 'a':
      if (val == NULL || !unescape (val, &len))
        return false;
      v = json_stringn (val, len);
      if (v == NULL)
        return false;
      if (type == 'a')
        {
          json_t *arr = json_object_get (obj, key);
          return json_is_array (arr) && json_array_append_new (arr, v) == 0;
        }
      break;
    case 'i':
      {
        char *e;
        if (val == NULL)
          return false;
        errno = 0;
        long long x = strtoll (val, &e, 10);
        if (errno || e == val || *e)
          return false;
        v = json_integer (x);
        break;
      }
    case 't':
    case 'f':
    case 'n':
    case 'A':
      if (val)
        return false;
      v = type == 't'   ? json_true ()
          : type == 'f' ? json_false ()
          : type == 'n' ? json_null ()
                        : json_array ();
      break;
    default:
      return false;
    }
  return json_object_set_new (obj, key, v) == 0;
}

/* The summary of a record's file (path, section 'c' or 's') into obj. 0; 1 when the file does
   not exist; -1 when it has no summary or a damaged one. buf: SUMMARY_MAX + 1 bytes of
   scratch. (getxattrat, relative to containers/, was measured: no faster.) */
static int
read_summary (const char *path, char section, json_t *obj, char *buf)
{
  ssize_t r = lgetxattr (path, SUMMARY_XATTR, buf, SUMMARY_MAX);
  if (r < 0 && errno == ENOENT)
    return 1;
  if (r < 0 && errno == ENOTSUP)
    no_xattrs = true;
  if (r <= 0)
    return -1;
  size_t len = (size_t)r;
  buf[len] = '\0';
  if (len < 22 || buf[len - 1] != '\n' || memchr (buf, '\0', len))
    return -1;
  /* The last line: "end <16 hex>\n". */
  char *endl = buf + len - 21;
  if (endl[-1] != '\n' || strncmp (endl, "end ", 4) != 0)
    return -1;
  /* The checksum in hex, without snprintf: this runs twice for each container ps lists. */
  uint64_t h = fnv1a64 (buf, (size_t)(endl - buf));
  for (int i = 15; i >= 0; i--, h >>= 4)
    if (endl[4 + i] != "0123456789abcdef"[h & 15])
      return -1;
  *endl = '\0';
  char *save = NULL;
  char *line = strtok_r (buf, "\n", &save);
  if (line == NULL || strcmp (line, section == 'c' ? "cimg-ps 1 config" : "cimg-ps 1 state") != 0)
    return -1;
  /* strtok_r skips empty lines, which the writer never makes: an empty string value still
     has its "s" type on the line. */
  while ((line = strtok_r (NULL, "\n", &save)))
    if (line[0] != section || !summary_field (line, obj))
      return -1;
  return 0;
}

/* The record of id from its summaries; NULL when config.json has none (or is gone), or
   state.json has a damaged one or none. path: scratch of prefix_len + 80 bytes that starts
   with the absolute path of the containers/ directory and a "/". */
static struct cimg_container *
load_summary (char *path, size_t prefix_len, const char *id, char *buf)
{
  memcpy (path + prefix_len, id, 64);
  strcpy (path + prefix_len + 64, "/config.json");
  cleanup_json json_t *config = json_object ();
  if (read_summary (path, 'c', config, buf) != 0)
    return NULL;
  strcpy (path + prefix_len + 64, "/state.json");
  cleanup_json json_t *state = json_object ();
  /* No state.json: "created", as the JSON path says. */
  if (read_summary (path, 's', state, buf) < 0)
    return NULL;
  struct cimg_container *c = xzalloc (sizeof *c);
  memcpy (c->id, id, 64);
  c->config = steal_pointer (&config);
  c->state = steal_pointer (&state);
  c->brief = true;
  return c;
}

/* After ps read a record from its JSON: set the summaries that were missing or damaged, when
   the container's lock is free right now (ps never waits for it). Under the lock state.json is
   not replaced, so what is read here is what its summary describes; c->state becomes it. */
static void
heal_summary (struct cimg_store *s, struct cimg_container *c)
{
  int dfd = cimg_store_dirfd (s);
  cleanup_free char *dir = cimg_container_dir (c);
  cleanup_close int lk = openat (dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lk < 0 || flock (lk, LOCK_EX | LOCK_NB) < 0)
    return;
  cleanup_free char *cp = record_path (s, c->id, "config.json");
  cleanup_free char *sp = record_path (s, c->id, "state.json");
  if (cp == NULL || sp == NULL)
    return;
  set_summary (-1, cp, c->config, 'c');
  cleanup_free char *rel = xasprintf ("%s/state.json", dir);
  struct stat sst;
  if (fstatat (dfd, rel, &sst, AT_SYMLINK_NOFOLLOW) < 0)
    return;
  cimg_error_t e = { 0 };
  json_t *st = cimg_json_load_at (dfd, rel, MAX_RECORD, &e);
  cimg_error_clear (&e);
  if (!json_is_object (st))
    {
      /* Unreadable state: stay on the JSON path, which reports it "created". */
      json_decref (st);
      return;
    }
  set_summary (-1, sp, st, 's');
  json_decref (c->state);
  c->state = st;
}

/* ---------------------------------------------------------------- names */

/* Docker's generator draws from longer lists; the shape ("adjective_surname") is what users
   and scripts expect. */
static const char *const left[] = {
  "admiring",      "adoring",   "amazing",    "angry",     "awesome",   "blissful",
  "bold",          "boring",    "brave",      "busy",      "charming",  "clever",
  "compassionate", "competent", "confident",  "cool",      "dazzling",  "determined",
  "eager",         "ecstatic",  "elastic",    "elegant",   "epic",      "exciting",
  "fervent",       "festive",   "focused",    "friendly",  "funny",     "gallant",
  "gifted",        "goofy",     "gracious",   "happy",     "hardcore",  "heuristic",
  "hopeful",       "hungry",    "infallible", "inspiring", "jolly",     "jovial",
  "keen",          "kind",      "laughing",   "loving",    "lucid",     "magical",
  "modest",        "musing",    "mystifying", "naughty",   "nervous",   "nice",
  "nifty",         "nostalgic", "optimistic", "peaceful",  "pensive",   "practical",
  "priceless",     "quirky",    "quizzical",  "relaxed",   "reverent",  "romantic",
  "serene",        "sharp",     "silly",      "sleepy",    "stoic",     "strange",
  "suspicious",    "sweet",     "tender",     "thirsty",   "trusting",  "upbeat",
  "vibrant",       "vigilant",  "vigorous",   "wizardly",  "wonderful", "xenodochial",
  "youthful",      "zealous",   "zen",
};
static const char *const right[] = {
  "agnesi",       "albattani",  "allen",         "archimedes", "ardinghelli", "babbage",
  "banach",       "bardeen",    "bartik",        "bell",       "bhabha",      "blackwell",
  "bohr",         "booth",      "borg",          "bose",       "brahmagupta", "brown",
  "carson",       "cerf",       "chandrasekhar", "chaum",      "clarke",      "curie",
  "darwin",       "davinci",    "diffie",        "dijkstra",   "dirac",       "driscoll",
  "easley",       "einstein",   "elion",         "engelbart",  "euclid",      "euler",
  "faraday",      "fermat",     "fermi",         "feynman",    "franklin",    "galileo",
  "gauss",        "goldberg",   "goodall",       "hamilton",   "hawking",     "heisenberg",
  "hertz",        "hodgkin",    "hoover",        "hopper",     "hypatia",     "jackson",
  "jang",         "jennings",   "johnson",       "kalam",      "kapitsa",     "keller",
  "kepler",       "khorana",    "knuth",         "kowalevski", "lalande",     "lamarr",
  "lamport",      "leakey",     "lehmann",       "liskov",     "lovelace",    "lumiere",
  "mahavira",     "mayer",      "mccarthy",      "mcclintock", "meitner",     "mendel",
  "merkle",       "mirzakhani", "morse",         "napier",     "newton",      "nobel",
  "noether",      "pare",       "pascal",        "pasteur",    "payne",       "perlman",
  "pike",         "poincare",   "ptolemy",       "raman",      "ramanujan",   "ride",
  "ritchie",      "rosalind",   "sammet",        "shannon",    "shockley",    "sinoussi",
  "stonebraker",  "swanson",    "tesla",         "thompson",   "torvalds",    "turing",
  "varahamihira", "villani",    "wescoff",       "wiles",      "williams",    "wilson",
  "wing",         "wozniak",    "wright",        "yalow",      "yonath",
};

static void
random_name (char *out, size_t n)
{
  char hex[65];
  cimg_random_hex64 (hex);
  unsigned long a = strtoul ((char[]){ hex[0], hex[1], hex[2], hex[3], 0 }, NULL, 16);
  unsigned long b = strtoul ((char[]){ hex[4], hex[5], hex[6], hex[7], 0 }, NULL, 16);
  snprintf (out, n, "%s_%s", left[a % ARRAY_SIZE (left)], right[b % ARRAY_SIZE (right)]);
}

static bool
valid_name (const char *n)
{
  /* Docker: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
  if (!((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z')
        || (n[0] >= '0' && n[0] <= '9')))
    return false;
  if (n[1] == '\0')
    return false;
  for (const char *p = n + 1; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '_' || *p == '.' || *p == '-'))
      return false;
  return strlen (n) < 256;
}

/* ---------------------------------------------------------------- records */

static struct cimg_container *
load (struct cimg_store *s, const char *id, cimg_error_t *err)
{
  cleanup_free char *cp = xasprintf ("containers/%s/config.json", id);
  json_t *config = cimg_json_load_at (cimg_store_dirfd (s), cp, MAX_RECORD, err);
  if (config == NULL)
    {
      cimg_error_wrap (err, "container %.12s", id);
      return NULL;
    }
  struct cimg_container *c = xzalloc (sizeof *c);
  snprintf (c->id, sizeof c->id, "%s", id);
  c->config = config;
  cimg_error_t e2 = { 0 };
  if (cimg_container_reload (s, c, &e2) < 0)
    {
      /* A record being created has no state yet: it is "created". */
      cimg_error_clear (&e2);
      c->state = json_object ();
    }
  return c;
}

int
cimg_container_reload (struct cimg_store *s, struct cimg_container *c, cimg_error_t *err)
{
  cleanup_free char *sp = xasprintf ("containers/%s/state.json", c->id);
  json_t *st = cimg_json_load_at (cimg_store_dirfd (s), sp, MAX_RECORD, err);
  if (st == NULL)
    return -1;
  json_decref (c->state);
  c->state = st;
  return 0;
}

/* Call fn with each record's ID; stops early when fn returns non-zero. */
static char **
list_ids (struct cimg_store *s)
{
  char **ids = NULL;
  int fd = openat (cimg_store_dirfd (s), "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  cleanup_dir DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return NULL;
    }
  struct dirent *e;
  while ((e = readdir (d)))
    if (cimg_hex64_valid (e->d_name))
      cimg_strv_append (&ids, e->d_name);
  return ids;
}

/* The lock on the containers/ directory: held exclusive while a name is checked and taken. */
static int
lock_containers (struct cimg_store *s, cimg_error_t *err)
{
  int fd = openat (cimg_store_dirfd (s), "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "open containers");
  while (flock (fd, LOCK_EX) < 0)
    if (errno != EINTR)
      {
        close (fd);
        return cimg_error_sys (err, "lock containers");
      }
  return fd;
}

static const char *
name_taken_by (struct cimg_store *s, char **ids, const char *name, char **owner)
{
  for (size_t i = 0; ids && ids[i]; i++)
    {
      cimg_error_t e = { 0 };
      cleanup_container struct cimg_container *c = load (s, ids[i], &e);
      cimg_error_clear (&e);
      if (c && strcmp (cimg_container_name (c), name) == 0)
        {
          *owner = xstrdup (c->id);
          return *owner;
        }
    }
  return NULL;
}

struct cimg_container *
cimg_container_create (struct cimg_store *s, const char *id, const char *name, json_t *config,
                       cimg_error_t *err)
{
  if (id && !cimg_hex64_valid (id))
    {
      cimg_error_set (err, EINVAL, "invalid container ID \"%s\"", id);
      return NULL;
    }
  if (name && !valid_name (name))
    {
      cimg_error_set (err, EINVAL,
                      "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                      name);
      return NULL;
    }
  cleanup_close int lk = lock_containers (s, err);
  if (lk < 0)
    return NULL;
  cleanup_strv char **ids = list_ids (s);
  char namebuf[128];
  if (name)
    {
      cleanup_free char *owner = NULL;
      if (name_taken_by (s, ids, name, &owner))
        {
          cimg_error_set (err, EEXIST,
                          "Conflict. The container name \"/%s\" is already in use by container "
                          "\"%s\". You have to remove (or rename) that container to be able to "
                          "reuse that name.",
                          name, owner);
          return NULL;
        }
    }
  else
    for (int tries = 0;; tries++)
      {
        cleanup_free char *owner = NULL;
        random_name (namebuf, sizeof namebuf);
        /* Docker appends a digit after a collision. */
        if (tries > 3)
          snprintf (namebuf + strlen (namebuf), sizeof namebuf - strlen (namebuf), "%d", tries);
        if (!name_taken_by (s, ids, namebuf, &owner))
          break;
      }
  const char *nm = name ? name : namebuf;

  struct cimg_container *c = xzalloc (sizeof *c);
  if (id)
    snprintf (c->id, sizeof c->id, "%s", id);
  else
    cimg_random_hex64 (c->id);
  c->config = json_deep_copy (config);
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  char created[64];
  cimg_time_rfc3339 (ts.tv_sec, ts.tv_nsec, created, sizeof created);
  json_object_set_new (c->config, "Id", json_string (c->id));
  cleanup_free char *slashname = xasprintf ("/%s", nm);
  json_object_set_new (c->config, "Name", json_string (slashname));
  json_object_set_new (c->config, "Created", json_string (created));
  c->state = json_pack ("{s:s, s:i, s:i, s:s, s:s, s:b}", "Status", "created", "Pid", 0, "ExitCode",
                        0, "StartedAt", "0001-01-01T00:00:00Z", "FinishedAt",
                        "0001-01-01T00:00:00Z", "OOMKilled", 0);

  int dfd = cimg_store_dirfd (s);
  cleanup_free char *dir = cimg_container_dir (c);
  /* The directory is private: the write layer may hold the container's secrets. The
     config.json comes last, so that a record listed by name is always complete. */
  if (mkdirat (dfd, dir, 0700) < 0)
    {
      cimg_error_sys (err, "create %s", dir);
      cimg_container_free (c);
      return NULL;
    }
  cleanup_close int cfd = openat (dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cfd < 0 || mkdirat (cfd, "upper", 0755) < 0 || mkdirat (cfd, "work", 0700) < 0
      || mkdirat (cfd, "merged", 0755) < 0)
    {
      cimg_error_sys (err, "create %s", dir);
      goto fail;
    }
  if (cimg_json_save_at (cfd, "config.json", c->config, err) < 0)
    goto fail;
  {
    cleanup_free char *path = record_path (s, c->id, "config.json");
    set_summary (-1, path, c->config, 'c');
  }
  return c;
fail:
  {
    cimg_error_t e2 = { 0 };
    cimg_rm_rf_at (dfd, dir, &e2);
    cimg_error_clear (&e2);
  }
  cimg_container_free (c);
  return NULL;
}

struct cimg_container *
cimg_container_find (struct cimg_store *s, const char *ref, cimg_error_t *err)
{
  if (ref == NULL || *ref == '\0')
    {
      cimg_error_set (err, EINVAL, "No such container: %s", ref ? ref : "");
      return NULL;
    }
  if (cimg_hex64_valid (ref))
    {
      cleanup_free char *p = xasprintf ("containers/%s/config.json", ref);
      if (faccessat (cimg_store_dirfd (s), p, F_OK, 0) == 0)
        return load (s, ref, err);
    }
  cleanup_strv char **ids = list_ids (s);
  const char *name = ref[0] == '/' ? ref + 1 : ref;
  for (size_t i = 0; ids && ids[i]; i++)
    {
      cimg_error_t e = { 0 };
      struct cimg_container *c = load (s, ids[i], &e);
      cimg_error_clear (&e);
      if (c && strcmp (cimg_container_name (c), name) == 0)
        return c;
      cimg_container_free (c);
    }
  const char *match = NULL;
  size_t n = 0, len = strlen (ref);
  for (size_t i = 0; ids && ids[i]; i++)
    if (strncmp (ids[i], ref, len) == 0)
      match = ids[i], n++;
  if (n > 1)
    {
      cimg_error_set (err, EINVAL, "multiple IDs found with provided prefix: %s", ref);
      return NULL;
    }
  if (n == 0)
    {
      cimg_error_set (err, ENOENT, "No such container: %s", ref);
      return NULL;
    }
  return load (s, match, err);
}

static int
by_created_desc (const void *a, const void *b)
{
  const struct cimg_container *x = *(struct cimg_container *const *)a;
  const struct cimg_container *y = *(struct cimg_container *const *)b;
  const char *cx = cimg_json_str (x->config, "Created");
  const char *cy = cimg_json_str (y->config, "Created");
  /* RFC 3339 in UTC with fixed-width fractions: string order is time order. */
  return strcmp (cy ? cy : "", cx ? cx : "");
}

int
cimg_container_list (struct cimg_store *s, struct cimg_container ***out, size_t *n,
                     cimg_error_t *err)
{
  (void)err;
  cleanup_strv char **ids = list_ids (s);
  size_t cnt = cimg_strv_len (ids), k = 0;
  struct cimg_container **v = xzalloc ((cnt + 1) * sizeof *v);
  for (size_t i = 0; i < cnt; i++)
    {
      cimg_error_t e = { 0 };
      struct cimg_container *c = load (s, ids[i], &e);
      /* A record without its config.json is one being created or removed: not listed. */
      cimg_error_clear (&e);
      if (c)
        v[k++] = c;
    }
  qsort (v, k, sizeof *v, by_created_desc);
  *out = v;
  *n = k;
  return 0;
}

struct keyed
{
  const char *created;
  struct cimg_container *c;
};

static int
by_key_desc (const void *a, const void *b)
{
  return strcmp (((const struct keyed *)b)->created, ((const struct keyed *)a)->created);
}

/* by_created_desc, with each record's Created looked up once rather than at every
   comparison. */
static void
sort_created_desc (struct cimg_container **v, size_t n)
{
  cleanup_free struct keyed *k = xmalloc ((n ? n : 1) * sizeof *k);
  for (size_t i = 0; i < n; i++)
    {
      const char *cr = cimg_json_str (v[i]->config, "Created");
      k[i] = (struct keyed){ cr ? cr : "", v[i] };
    }
  qsort (k, n, sizeof *k, by_key_desc);
  for (size_t i = 0; i < n; i++)
    v[i] = k[i].c;
}

int
cimg_container_list_brief (struct cimg_store *s, struct cimg_container ***out, size_t *n,
                           cimg_error_t *err)
{
  (void)err;
  struct cimg_container **v = NULL;
  size_t k = 0, cap = 0;
  int fd = openat (cimg_store_dirfd (s), "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  cleanup_dir DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL && fd >= 0)
    close (fd);
  char buf[SUMMARY_MAX + 1];
  cleanup_free char *prefix = record_path (s, "", "");
  size_t plen = prefix ? strlen (prefix) - 1 : 0; /* ".../containers/" */
  cleanup_free char *path = prefix ? xmalloc (plen + 80) : NULL;
  if (path)
    memcpy (path, prefix, plen);
  struct dirent *e;
  while (d && (e = readdir (d)))
    {
      if (!cimg_hex64_valid (e->d_name))
        continue;
      struct cimg_container *c
          = path && !no_xattrs ? load_summary (path, plen, e->d_name, buf) : NULL;
      if (c == NULL)
        {
          cimg_error_t e2 = { 0 };
          c = load (s, e->d_name, &e2);
          /* A record without its config.json is one being created or removed: not listed. */
          cimg_error_clear (&e2);
          if (c && !no_xattrs)
            heal_summary (s, c);
        }
      if (c == NULL)
        continue;
      if (k == cap)
        {
          cap = cap ? cap * 2 : 64;
          v = xrealloc (v, (cap + 1) * sizeof *v);
        }
      v[k++] = c;
    }
  if (v == NULL)
    v = xzalloc (sizeof *v);
  sort_created_desc (v, k);
  *out = v;
  *n = k;
  return 0;
}

int
cimg_container_lock (struct cimg_store *s, const struct cimg_container *c, cimg_error_t *err)
{
  cleanup_free char *dir = cimg_container_dir (c);
  int fd = openat (cimg_store_dirfd (s), dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "container %.12s", c->id);
  while (flock (fd, LOCK_EX) < 0)
    if (errno != EINTR)
      {
        close (fd);
        return cimg_error_sys (err, "lock container %.12s", c->id);
      }
  return fd;
}

static void
now_rfc3339 (char *out, size_t n)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  cimg_time_rfc3339 (ts.tv_sec, ts.tv_nsec, out, n);
}

static int
save_state (struct cimg_store *s, struct cimg_container *c, json_t *st, cimg_error_t *err)
{
  char hex[65];
  cimg_random_hex64 (hex);
  cleanup_free char *tmp = xasprintf ("containers/%s/state.json.tmp-%.12s", c->id, hex);
  cleanup_free char *p = xasprintf ("containers/%s/state.json", c->id);
  cleanup_free char *text = json_dumps (st, JSON_COMPACT | JSON_SORT_KEYS);
  int dfd = cimg_store_dirfd (s);
  int fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return cimg_error_sys (err, "write %s", p);
  if (cimg_write_all (fd, text, strlen (text)) < 0)
    {
      cimg_error_sys (err, "write %s", p);
      close (fd);
      unlinkat (dfd, tmp, 0);
      return -1;
    }
  /* Before the rename: the summary becomes state.json's in the same step as the state. */
  set_summary (fd, NULL, st, 's');
  close (fd);
  if (renameat (dfd, tmp, dfd, p) < 0)
    {
      cimg_error_sys (err, "rename %s", p);
      unlinkat (dfd, tmp, 0);
      return -1;
    }
  json_decref (c->state);
  c->state = json_incref (st);
  return 0;
}

/* The state on disk (under the lock) with fields set over it: keys the caller does not set
   (RestartCount, MonitorPid, …) are kept. */
static int
merge_state (struct cimg_store *s, struct cimg_container *c, json_t *fields, const char *drop,
             cimg_error_t *err)
{
  cleanup_free char *sp = xasprintf ("containers/%s/state.json", c->id);
  cimg_error_t e = { 0 };
  cleanup_json json_t *st = cimg_json_load_at (cimg_store_dirfd (s), sp, MAX_RECORD, &e);
  cimg_error_clear (&e);
  if (!json_is_object (st))
    {
      json_decref (st);
      st = json_object ();
    }
  json_object_update (st, fields);
  if (drop)
    json_object_del (st, drop);
  return save_state (s, c, st, err);
}

int
cimg_container_set_running (struct cimg_store *s, struct cimg_container *c, pid_t pid,
                            cimg_error_t *err)
{
  return cimg_container_set_running_in (s, c, pid, NULL, err);
}

int
cimg_container_set_running_in (struct cimg_store *s, struct cimg_container *c, pid_t pid,
                               char *const *cgroup_dirs, cimg_error_t *err)
{
  cleanup_close int lk = cimg_container_lock (s, c, err);
  if (lk < 0)
    return -1;
  char now[64];
  now_rfc3339 (now, sizeof now);
  /* PidIno always: 0 (unknown) must replace the one of an earlier run. */
  cleanup_json json_t *st = json_pack (
      "{s:s, s:i, s:I, s:I, s:i, s:s, s:s, s:b, s:b}", "Status", "running", "Pid", (int)pid,
      "PidStart", (json_int_t)pid_start_time (pid), "PidIno", (json_int_t)pid_ino (pid), "ExitCode",
      0, "StartedAt", now, "FinishedAt", "0001-01-01T00:00:00Z", "OOMKilled", 0, "Restarting", 0);
  /* The directories of this start, or none: an earlier run's are dropped. */
  if (cgroup_dirs)
    json_object_set_new (st, "CgroupPaths", cimg_json_from_strv (cgroup_dirs));
  return merge_state (s, c, st, cgroup_dirs ? NULL : "CgroupPaths", err);
}

int
cimg_container_set_exited (struct cimg_store *s, struct cimg_container *c, int exit_code,
                           bool oom_killed, cimg_error_t *err)
{
  cleanup_close int lk = cimg_container_lock (s, c, err);
  if (lk < 0)
    return -1;
  char now[64];
  now_rfc3339 (now, sizeof now);
  cleanup_json json_t *st
      = json_pack ("{s:s, s:i, s:i, s:s, s:b}", "Status", "exited", "Pid", 0, "ExitCode", exit_code,
                   "FinishedAt", now, "OOMKilled", oom_killed);
  return merge_state (s, c, st, NULL, err);
}

int
cimg_container_update_state (struct cimg_store *s, struct cimg_container *c, json_t *fields,
                             cimg_error_t *err)
{
  cleanup_close int lk = cimg_container_lock (s, c, err);
  if (lk < 0)
    return -1;
  return merge_state (s, c, fields, NULL, err);
}

int64_t
cimg_pid_start_time (pid_t pid)
{
  return pid_start_time (pid);
}

int
cimg_container_remove (struct cimg_store *s, struct cimg_container *c, cimg_error_t *err)
{
  cleanup_free char *dir = cimg_container_dir (c);
  int dfd = cimg_store_dirfd (s);
  /* config.json goes first: from then on the record is no longer listed or used by an image,
     and an interrupted removal leaves only a directory that `rm` of the ID can finish. */
  cleanup_free char *cp = xasprintf ("%s/config.json", dir);
  if (unlinkat (dfd, cp, 0) < 0 && errno != ENOENT)
    return cimg_error_sys (err, "remove %s", cp);
  if (cimg_rm_rf_at (dfd, dir, err) < 0)
    return cimg_error_wrap (err, "remove container %.12s", c->id);
  return 0;
}

/* ---------------------------------------------------------------- reading the image */

static bool
is_whiteout (int fd)
{
  struct stat st;
  return fstat (fd, &st) == 0 && S_ISCHR (st.st_mode) && st.st_rdev == makedev (0, 0);
}

int
cimg_layers_read_file (const int *layer_fds, size_t n, const char *path, size_t max, char **out,
                       cimg_error_t *err)
{
  *out = NULL;
  for (size_t i = 0; i < n; i++)
    {
      /* O_PATH first: a whiteout (char 0:0) or a fifo must be recognised, not opened. */
      int fd = cimg_openat_in_root (layer_fds[i], path, O_PATH, 0);
      if (fd < 0)
        {
          if (errno != ENOENT && errno != ENOTDIR)
            return cimg_error_sys (err, "open %s in the image", path);
          /* A whiteout of a parent directory in this layer hides the lower ones. */
          cleanup_free char *copy = xstrdup (path);
          bool hidden = false;
          for (char *sl = strrchr (copy, '/'); sl && sl != copy && !hidden;
               sl = strrchr (copy, '/'))
            {
              *sl = '\0';
              cleanup_close int pfd = cimg_openat_in_root (layer_fds[i], copy, O_PATH, 0);
              hidden = pfd >= 0 && is_whiteout (pfd);
            }
          if (hidden)
            return 1;
          continue;
        }
      cleanup_close int pathfd = fd;
      if (is_whiteout (pathfd))
        return 1;
      struct stat st;
      if (fstat (pathfd, &st) < 0)
        return cimg_error_sys (err, "stat %s in the image", path);
      if (!S_ISREG (st.st_mode))
        return cimg_error_set (err, EINVAL, "%s in the image is not a regular file", path);
      cleanup_close int f = cimg_openat_in_root (layer_fds[i], path, O_RDONLY | O_NONBLOCK, 0);
      if (f < 0)
        return cimg_error_sys (err, "open %s in the image", path);
      if ((uint64_t)st.st_size > max)
        return cimg_error_set (err, EFBIG, "%s in the image is over %zu bytes", path, max);
      size_t len = 0;
      char *buf = xmalloc (max + 1);
      for (;;)
        {
          ssize_t r = read (f, buf + len, max - len);
          if (r < 0 && errno == EINTR)
            continue;
          if (r < 0)
            {
              free (buf);
              return cimg_error_sys (err, "read %s in the image", path);
            }
          if (r == 0 || (len += (size_t)r) == max)
            break;
        }
      buf[len] = '\0';
      *out = buf;
      return 0;
    }
  return 1;
}
