#ifndef HAMMER_CHIREDIS_SHIM_H
#define HAMMER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
/* Not hiredis's, but a system header Glibc's Swift module lacks: the completions' eventfd (Async/Engine.swift). */
#include <sys/eventfd.h>
#endif
