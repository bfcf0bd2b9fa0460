/* gseg-train — train a glacier segmentation network on scenes and masks.
 * Parsing and running live in the library (gseg_train_tool_main); the first
 * Ctrl-C finishes the step and keeps the last checkpoint. */
#include "tool.h"

int main(int argc, char **argv)
{
    return tool_main("gseg-train", argc, argv, gseg_train_tool_main, gseg_train_interrupt);
}
