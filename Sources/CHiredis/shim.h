#ifndef HAMMER_CHIREDIS_SHIM_H
#define HAMMER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
