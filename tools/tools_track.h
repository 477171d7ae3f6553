/*
 * tools_track.h - private to `waymark track`: what tools_track.c
 * (options, keys, exit codes) calls in tools_track_out.c (the timeline
 * and the --json object on stdout); the walk is track/trk_walk.h's.
 */
#ifndef WAYMARK_TOOLS_TRACK_H
#define WAYMARK_TOOLS_TRACK_H

#include <stddef.h>
#include <sys/socket.h>

#include "track/trk_client.h"
#include "track/trk_walk.h"

/* track_print_text - the timeline on stdout */
void		 track_print_text(const struct walk *w);
/* track_print_json - the one object (README) on stdout; 0 or -1 */
int		 track_print_json(const struct walk *w);

#endif
