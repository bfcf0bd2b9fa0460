/* gseg-import / gseg-export / gseg-info — model file tools. One source, built
 * three times; GSEG_TOOL names the tool. Parsing and running live in the
 * library (gseg_model_tool_main). */
#include "tool.h"

static int run(int argc, char **argv) { return gseg_model_tool_main(GSEG_TOOL, argc, argv); }

int main(int argc, char **argv) { return tool_main(GSEG_TOOL, argc, argv, run, NULL); }
