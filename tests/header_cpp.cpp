// The public header compiles as C++17 and links with C linkage.
#include "gseg.h"
#include <cstring>
int main() { return std::strcmp(gseg_version(), GSEG_VERSION_STRING) != 0; }
