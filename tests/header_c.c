/* The public header compiles as strict C11 on its own. */
#include "gseg.h"
#include <string.h>
int main(void) { return strcmp(gseg_version(), GSEG_VERSION_STRING) != 0; }
