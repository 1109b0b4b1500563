/* The ABI is a header only; SwiftPM wants one source file per C target. */
#include "forklift_plugin.h"
