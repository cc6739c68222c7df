/* When CIMG_FUZZ is off, each harness is also built with this main as a plain program that runs
   it once over every file of the directories (or files) it is given: the committed corpus and
   the regression inputs of past crashes run in every ctest pass, with gcc and ASAN too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      fprintf (stderr, "%s: %s\n", path, strerror (errno));
      return -1;
    }
  uint8_t *buf = malloc ((size_t)st.st_size + 1);
  size_t len = 0;
  ssize_t n;
  while (buf && (n = read (fd, buf + len, (size_t)st.st_size - len)) > 0)
    len += (size_t)n;
  close (fd);
  if (buf == NULL)
    return -1;
  LLVMFuzzerTestOneInput (buf, len);
  free (buf);
  return 0;
}

static int
cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

int
main (int argc, char **argv)
{
  int files = 0, bad = 0;
  for (int i = 1; i < argc; i++)
    {
      struct stat st;
      if (stat (argv[i], &st) < 0)
        {
          fprintf (stderr, "%s: %s\n", argv[i], strerror (errno));
          return 1;
        }
      if (!S_ISDIR (st.st_mode))
        {
          bad |= run_file (argv[i]) < 0;
          files++;
          continue;
        }
      DIR *d = opendir (argv[i]);
      char **names = NULL;
      size_t n = 0;
      struct dirent *de;
      while (d && (de = readdir (d)) != NULL)
        {
          if (de->d_name[0] == '.')
            continue;
          names = realloc (names, (n + 1) * sizeof *names);
          names[n++] = strdup (de->d_name);
        }
      if (d)
        closedir (d);
      qsort (names, n, sizeof *names, cmp);
      for (size_t j = 0; j < n; j++)
        {
          char path[4096];
          snprintf (path, sizeof path, "%s/%s", argv[i], names[j]);
          bad |= run_file (path) < 0;
          files++;
          free (names[j]);
        }
      free (names);
    }
  printf ("%d inputs replayed\n", files);
  return bad || files == 0 ? 1 : 0;
}
