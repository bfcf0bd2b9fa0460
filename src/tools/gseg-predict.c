/* gseg-predict — map glaciers in scenes: masks (COG), probabilities,
 * outlines, quicklooks; many scenes, shards, summaries. */
#include "tool.h"

int main(int argc, char **argv)
{
    return tool_main("gseg-predict", argc, argv, gseg_predict_tool_main, NULL);
}
