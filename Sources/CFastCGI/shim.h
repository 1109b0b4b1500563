/* libfcgi (Debian: libfcgi-dev). Only the reentrant fcgiapp API is used: fcgi_stdio.h
 * redefines stdio and must never be included by Forklift. */
#include <stdio.h>
#include <fcgiapp.h>
