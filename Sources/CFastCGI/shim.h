/* libfcgi (Debian: libfcgi-dev). Only the reentrant fcgiapp API is used: fcgi_stdio.h
 * redefines stdio and must never be included by Forklift. */
#if defined(__has_include) && !__has_include(<fcgiapp.h>)
#error "libfcgi's header fcgiapp.h is missing: install libfcgi-dev (apt-get install libfcgi-dev, or scripts/install-deps.sh)"
#endif
#include <stdio.h>
#include <fcgiapp.h>
