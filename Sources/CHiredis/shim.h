#ifndef HAMMER_CHIREDIS_SHIM_H
#define HAMMER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
/* Not hiredis's, but system headers Glibc's Swift module lacks: the completions' eventfd and epoll set (Engine/Engine.swift, Pool/IdleWatch.swift). */
#include <sys/eventfd.h>
#include <sys/epoll.h>
#endif
