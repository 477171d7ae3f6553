/*
 * tools.h - private interfaces between the files of tools/ (the `waymark`
 * command).  waymark.c owns options, the control-socket client and exit
 * codes; tools_print.c owns the human-readable views of the JSON the
 * daemon sends (DESIGN.md "Machine-readable output").
 */
#ifndef WAYMARK_TOOLS_H
#define WAYMARK_TOOLS_H

#include <stdio.h>
#include <jansson.h>

/* exit codes (DESIGN.md) */
#define EX_WM_OK	0
#define EX_WM_FAIL	1	/* unknown QID, not allowed, daemon unreachable */
#define EX_WM_USAGE	2

/* tools_print_queue - mailq-like listing of an array of message objects */
void	tools_print_queue(FILE *fp, json_t *msgs);
/* tools_print_show - one message object with its "events" */
void	tools_print_show(FILE *fp, json_t *msg);

#endif
