#include "config.h"
/*
 * queue_gauge.c - per handling state, how many messages of the in-memory
 * table there are and the arrival of the oldest, kept as messages enter
 * and leave the table and move between states (for `/metrics`: never a
 * scan of the queue per scrape).
 * Owns: one count and one min-heap of arrival times per state, each
 *       message's position in its state's heap (qpriv.gauge_idx);
 *       queue_state_gauges.
 * Called by: qmem_insert / qmem_remove (queue_main.c) and state_move
 *       (queue_state.c), the only places where the table or a state
 *       changes.
 * Invariant: count[s] = the messages of the table in state s; the heap
 *       of s holds them too, except one whose heap slot could not be
 *       allocated (ENOMEM, logged): then the oldest may be younger.
 * Costs: O(log n) per change, O(states) per scrape.
 */

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "queue/queue_int.h"

#define NSTATES	(MS_OTHER + 1)
_Static_assert(NSTATES == QUEUE_NSTATES, "QUEUE_NSTATES is every state");

struct gheap {
	struct qmsg	**v;
	size_t		  n, cap;
};

static uint64_t		count[NSTATES];
static struct gheap	heaps[NSTATES];

/* gidx - m's position in its heap (SIZE_MAX: none) */
static size_t *
gidx(struct qmsg *m)
{
	return &((struct qpriv *)m->priv)->gauge_idx;
}

/* gswap - exchange slots i and j of h */
static void
gswap(struct gheap *h, size_t i, size_t j)
{
	struct qmsg	*t = h->v[i];

	h->v[i] = h->v[j];
	h->v[j] = t;
	*gidx(h->v[i]) = i;
	*gidx(h->v[j]) = j;
}

/* gup, gdown - restore the heap order around slot i */
static void
gup(struct gheap *h, size_t i)
{
	while (i > 0 && h->v[i]->arrival < h->v[(i - 1) / 2]->arrival) {
		gswap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
gdown(struct gheap *h, size_t i)
{
	size_t	l, s;

	for (;;) {
		l = 2 * i + 1;
		if (l >= h->n)
			return;
		s = l + 1 < h->n && h->v[l + 1]->arrival < h->v[l]->arrival ?
		    l + 1 : l;
		if (h->v[s]->arrival >= h->v[i]->arrival)
			return;
		gswap(h, i, s);
		i = s;
	}
}

/* gadd - m into the heap of its state (counted whatever happens) */
static void
gadd(struct qmsg *m)
{
	struct gheap	*h;
	struct qmsg	**nv;
	size_t		  ncap;

	if ((unsigned)m->state >= NSTATES)
		return;
	count[m->state]++;
	if (qmsg_priv(m) == NULL)
		goto nomem;
	h = &heaps[m->state];
	if (h->n == h->cap) {
		ncap = h->cap ? h->cap * 2 : 64;
		if ((nv = reallocarray(h->v, ncap, sizeof(*nv))) == NULL)
			goto nomem;
		h->v = nv;
		h->cap = ncap;
	}
	h->v[h->n] = m;
	*gidx(m) = h->n;
	h->n++;
	gup(h, h->n - 1);
	return;
nomem:
	if (m->priv != NULL)
		*gidx(m) = SIZE_MAX;
	log_warnx("qid=%s queue gauges: out of memory (its state's oldest "
	    "age may be too low)", m->qid);
}

/* gdel - m out of the heap of state st (and its count) */
static void
gdel(struct qmsg *m, enum msg_state st)
{
	struct gheap	*h;
	size_t		 i;

	if ((unsigned)st >= NSTATES)
		return;
	if (count[st] > 0)
		count[st]--;
	if (m->priv == NULL || (i = *gidx(m)) == SIZE_MAX)
		return;
	h = &heaps[st];
	*gidx(m) = SIZE_MAX;
	if (i >= h->n || h->v[i] != m)
		return;			/* not ours: never happens */
	h->n--;
	if (i == h->n)
		return;
	h->v[i] = h->v[h->n];
	*gidx(h->v[i]) = i;
	gdown(h, i);
	gup(h, i);
}

/* gauge_insert - m entered the in-memory table */
void
gauge_insert(struct qmsg *m)
{
	gadd(m);
}

/* gauge_remove - m left the in-memory table */
void
gauge_remove(struct qmsg *m)
{
	gdel(m, m->state);
}

/* gauge_move - m (in the table) went from state `from` to its m->state */
void
gauge_move(struct qmsg *m, enum msg_state from)
{
	if (from == m->state)
		return;
	gdel(m, from);
	gadd(m);
}

/* gauge_reset - every count 0, every heap freed */
void
gauge_reset(void)
{
	size_t	s;

	for (s = 0; s < NSTATES; s++) {
		free(heaps[s].v);
		heaps[s].v = NULL;
		heaps[s].n = heaps[s].cap = 0;
		count[s] = 0;
	}
}

size_t
queue_state_gauges(struct queue_state_gauge *out, size_t max, time_t now)
{
	size_t	s;
	time_t	oldest;

	for (s = 0; s < NSTATES && s < max; s++) {
		out[s].state = msg_state_name((enum msg_state)s);
		out[s].messages = count[s];
		out[s].oldest_seconds = 0;
		if (heaps[s].n > 0) {
			oldest = heaps[s].v[0]->arrival;
			out[s].oldest_seconds = now > oldest ?
			    (double)(now - oldest) : 0;
		}
	}
	return s;
}
