#include "cli/cli.h"

int
main (int argc, char **argv)
{
  return cimg_cli_main (argc, argv);
}
