/* gseg-evaluate — a model against labelled scenes.
 * Parsing and running live in the library (gseg_evaluate_tool_main). */
#include "tool.h"

int main(int argc, char **argv)
{
    return tool_main("gseg-evaluate", argc, argv, gseg_evaluate_tool_main, NULL);
}
