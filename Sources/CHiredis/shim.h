#ifndef HAMMER_CHIREDIS_SHIM_H
#define HAMMER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
/* Not hiredis's, but system headers Glibc's Swift module lacks: the completions' eventfd and epoll set (Async/Engine.swift). */
#include <sys/eventfd.h>
#include <sys/epoll.h>
#endif
