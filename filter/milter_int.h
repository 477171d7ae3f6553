/*
 * milter_int.h - private declarations shared by filter/milter.c (the
 * connections, the protocol, the stages up to DATA) and
 * filter/milter_eom.c (the message: header fields, body, end of
 * message, modifications).  Nothing else includes it.
 */
#ifndef WAYMARK_FILTER_MILTER_INT_H
#define WAYMARK_FILTER_MILTER_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "filter/milter.h"

struct bufferevent;
struct event;

/* protocol constants (Sendmail's mfdef.h / mfapi.h) */
#define SMFI_PROT_VERSION	6
#define SMFIF_ADDHDRS		0x001u
#define SMFIF_CHGBODY		0x002u
#define SMFIF_ADDRCPT		0x004u
#define SMFIF_DELRCPT		0x008u
#define SMFIF_CHGHDRS		0x010u
#define SMFIF_QUARANTINE	0x020u
#define SMFIF_CHGFROM		0x040u
#define SMFIF_ADDRCPT_PAR	0x080u
#define SMFIF_SETSYMLIST	0x100u
#define SMFI_CURR_ACTS		0x1FFu

#define SMFIP_NOCONNECT		0x00000001u
#define SMFIP_NOHELO		0x00000002u
#define SMFIP_NOMAIL		0x00000004u
#define SMFIP_NORCPT		0x00000008u
#define SMFIP_NOBODY		0x00000010u
#define SMFIP_NOHDRS		0x00000020u
#define SMFIP_NOEOH		0x00000040u
#define SMFIP_NR_HDR		0x00000080u
#define SMFIP_NOUNKNOWN		0x00000100u
#define SMFIP_NODATA		0x00000200u
#define SMFIP_SKIP		0x00000400u
#define SMFIP_RCPT_REJ		0x00000800u
#define SMFIP_NR_CONN		0x00001000u
#define SMFIP_NR_HELO		0x00002000u
#define SMFIP_NR_MAIL		0x00004000u
#define SMFIP_NR_RCPT		0x00008000u
#define SMFIP_NR_DATA		0x00010000u
#define SMFIP_NR_UNKN		0x00020000u
#define SMFIP_NR_EOH		0x00040000u
#define SMFIP_NR_BODY		0x00080000u
#define SMFIP_HDR_LEADSPC	0x00100000u
#define SMFI_CURR_PROT		0x001FFFFFu

#define MILTER_CHUNK_SIZE	65535
#define MILTER_PKT_MAX		(1024 * 1024)	/* longest reply accepted */
#define MILTER_NSTAGES		7	/* SMFIM_CONNECT .. SMFIM_EOH */

enum mconn_state { MC_CONNECTING = 0, MC_NEGOTIATING, MC_READY, MC_DEAD };

/* one modification received at EOM, applied at the milter's decision */
struct mmod {
	char		 cmd;
	char		*data;
	size_t		 len;
};

/* one milter's connection in one SMTP session */
struct mconn {
	struct milter_sess	*ms;
	size_t			 idx;
	char			*name;		/* the milters entry */
	struct bufferevent	*bev;
	struct event		*timer;
	enum mconn_state	 st;
	uint32_t		 actions, proto;
	char			*syms[MILTER_NSTAGES];	/* its macro lists */
	int			 skip_conn;	/* accepted the connection */
	int			 skip_msg;	/* accepted the message */
	int			 in_msg;	/* MAIL sent, no EOM/ABORT yet */
	int			 waiting;	/* a reply is awaited */
	int			 bskip;		/* SKIP: no more body chunks */
	struct mmod		*mods;
	size_t			 nmods;
	uint64_t		 modbytes;	/* their size, bounded */
};

/* a header field of the message */
struct mhdr {
	char		*name;
	char		*value;		/* after the colon, lines joined by "\n" */
	char		*raw;		/* as stored, with its CRLF */
	size_t		 rawlen;
};

/* a growing byte buffer */
struct mbuf {
	char		*p;
	size_t		 len, cap;
};

enum mphase { PH_HDR = 0, PH_EOH, PH_BODY, PH_EOM, PH_FINAL };

struct milter_sess {
	struct event_base	*base;
	char			 sid[20];
	unsigned		 tconnect, tcommand, tcontent;	/* seconds */
	int			 defact;	/* 0 tempfail, 1 accept, 2 reject */
	struct mconn		*c;
	size_t			 n;
	char			**mname, **mvalue;
	size_t			 nmacros;
	/* the operation in flight: its event letter, 0 = none */
	char			 op;
	unsigned char		*pkt;		/* its packet data (not EOM) */
	size_t			 pktlen;
	size_t			 cur;		/* the milter being asked */
	milter_done_fn		 done;
	void			*done_arg;
	struct event		*doneev;
	struct milter_result	 res;
	int			 discard;	/* this message is discarded */
	int			 stepping;	/* in ms_step/eom_step */
	char			 discard_by[128];	/* the milter that asked */
	/* EOM (milter_eom.c) */
	struct qmsg		*m;
	int			*fdp;
	int			 rfd;		/* body file, read */
	uint64_t		 max_size;
	struct mhdr		*hdrs;
	size_t			 nhdrs;
	int			 has_sep;	/* an empty line ended the header */
	off_t			 body_off, fsize;
	enum mphase		 phase;
	size_t			 hi;
	uint64_t		 boff;
	int			 replaced;	/* newbody holds the body */
	struct mbuf		 newbody;
	int			 hdr_changed;
};

/* milter.c */
void	mconn_send(struct mconn *c, char cmd, const void *data, size_t len);
void	mconn_send_macros(struct mconn *c, char stage);
void	mconn_wait(struct mconn *c, unsigned seconds);
void	mconn_fail(struct mconn *c, const char *why);
void	ms_finish(struct milter_sess *ms);
int	ms_default(struct milter_sess *ms, struct mconn *c);
void	ms_refuse(struct milter_sess *ms, struct mconn *c, int code, int cls,
	    int subj, int det, const char *text, const char *action);
int	ms_decide(struct milter_sess *ms, struct mconn *c, char cmd,
	    const unsigned char *data, size_t len);

/* milter_eom.c */
int	eom_prepare(struct milter_sess *ms);
void	eom_step(struct milter_sess *ms);
void	eom_reply(struct milter_sess *ms, struct mconn *c, char cmd,
	    const unsigned char *data, size_t len);
void	eom_clear(struct milter_sess *ms);
void	mconn_mods_free(struct mconn *c);

#endif
