/* gseg-tile — cut big scenes (+ masks or outlines) into an archive of chips
 * with an index, for gseg-train. Parsing and running live in the library
 * (gseg_tile_tool_main). */
#include "tool.h"

int main(int argc, char **argv)
{
    return tool_main("gseg-tile", argc, argv, gseg_tile_tool_main, NULL);
}
