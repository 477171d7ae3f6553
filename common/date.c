#include "config.h"
/*
 * date.c - date-time syntax shared by the server, the client and the CLI
 * (declared in common/syntax.h), on one day count (days_from_civil).
 * Owns: RFC 3339 5.6 date-times (HOLDUNTIL, RFC 4865; the queue's and
 *       the CLI's "YYYY-MM-DDTHH:MM:SSZ"), RFC 5322 3.3 date-times with
 *       the obsolete forms of 4.3 (two- and three-digit years, named
 *       and military zones, comments and folding anywhere; the dates
 *       of the MTQP client's tracking-status parts).
 * Invariants: parsers take (ptr, len), never write into their input and
 *       never read past len; a refused date leaves *out unchanged.
 * Not here: writing RFC 5322 dates in local time (rfc5322_date,
 *       common/util.c).
 */

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/syntax.h"

/* is_digit - an ASCII digit */
static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* is_alpha - an ASCII letter */
static int
is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* is_wsp - SP or HTAB */
static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* digits - n decimal digits at s as a number, -1 if not all digits */
static long
digits(const char *s, size_t n)
{
	long	v = 0;
	size_t	i;

	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static long long
days_from_civil(long y, long m, long d)
{
	long long	era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* rfc3339_parse - RFC 3339 5.6 date-time to Unix time */
int
rfc3339_parse(const char *s, size_t len, time_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	long		y, mo, d, h, mi, sec, oh = 0, om = 0;
	size_t		i = 19;
	int		sign = 0;

	if (len < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return -1;
	if ((y = digits(s, 4)) < 0 || (mo = digits(s + 5, 2)) < 1 || mo > 12 ||
	    (d = digits(s + 8, 2)) < 1 || d > mdays[mo - 1] ||
	    (h = digits(s + 11, 2)) < 0 || h > 23 ||
	    (mi = digits(s + 14, 2)) < 0 || mi > 59 ||
	    (sec = digits(s + 17, 2)) < 0 || sec > 60)
		return -1;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -1;
	if (s[i] == '.') {		/* time-secfrac: ignored */
		for (i++; i < len && is_digit(s[i]); i++)
			;
		if (s[i - 1] == '.')
			return -1;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z'))
		i++;
	else if (i + 6 <= len && (s[i] == '+' || s[i] == '-') &&
	    s[i + 3] == ':') {
		sign = s[i] == '+' ? 1 : -1;
		if ((oh = digits(s + i + 1, 2)) < 0 || oh > 23 ||
		    (om = digits(s + i + 4, 2)) < 0 || om > 59)
			return -1;
		i += 6;
	} else
		return -1;
	if (i != len)
		return -1;
	if (sec == 60)
		sec = 59;		/* a leap second: the second before */
	*out = (time_t)(days_from_civil(y, mo, d) * 86400LL + h * 3600 +
	    mi * 60 + sec - sign * (oh * 3600 + om * 60));
	return 0;
}

/* rfc3339_format - "YYYY-MM-DDTHH:MM:SSZ" */
int
rfc3339_format(time_t t, char *out, size_t outlen)
{
	struct tm	tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -1;
	return 0;
}

/* ---------------------------------------------------------- RFC 5322 */

struct lex {
	const char	*s;
	size_t		 len, pos;
};

/* lex_cfws - skip white space, line ends and (nested) comments */
static int
lex_cfws(struct lex *l)
{
	int	depth;

	for (;;) {
		while (l->pos < l->len && (is_wsp(l->s[l->pos]) ||
		    l->s[l->pos] == '\r' || l->s[l->pos] == '\n'))
			l->pos++;
		if (l->pos >= l->len || l->s[l->pos] != '(')
			return 0;
		for (depth = 0; l->pos < l->len; l->pos++) {
			if (l->s[l->pos] == '\\' && l->pos + 1 < l->len)
				l->pos++;
			else if (l->s[l->pos] == '(')
				depth++;
			else if (l->s[l->pos] == ')' && --depth == 0)
				break;
		}
		if (l->pos >= l->len)
			return -1;	/* unclosed comment */
		l->pos++;
	}
}

/* lex_num - 1 to maxd digits; the value, or -1 */
static long
lex_num(struct lex *l, size_t mind, size_t maxd, size_t *ndig)
{
	long	v = 0;
	size_t	n = 0;

	(void)lex_cfws(l);
	while (l->pos < l->len && is_digit(l->s[l->pos]) && n < maxd) {
		v = v * 10 + (l->s[l->pos++] - '0');
		n++;
	}
	if (n < mind || (l->pos < l->len && is_digit(l->s[l->pos])))
		return -1;
	if (ndig != NULL)
		*ndig = n;
	return v;
}

/* lex_word - letters; their count (0: none) */
static size_t
lex_word(struct lex *l, const char **w)
{
	size_t	s;

	(void)lex_cfws(l);
	s = l->pos;
	while (l->pos < l->len && is_alpha(l->s[l->pos]))
		l->pos++;
	*w = l->s + s;
	return l->pos - s;
}

/* lex_char - the character c (after CFWS); 0 or -1 */
static int
lex_char(struct lex *l, char c)
{
	(void)lex_cfws(l);
	if (l->pos < l->len && l->s[l->pos] == c) {
		l->pos++;
		return 0;
	}
	return -1;
}

/* zone_offset - a numeric or obsolete zone in seconds east; 0 or -1 */
static int
zone_offset(struct lex *l, long *off)
{
	static const struct {
		const char	*name;
		int		 hours;
	} zones[] = {
		{ "UT", 0 }, { "GMT", 0 }, { "EST", -5 }, { "EDT", -4 },
		{ "CST", -6 }, { "CDT", -5 }, { "MST", -7 }, { "MDT", -6 },
		{ "PST", -8 }, { "PDT", -7 },
	};
	const char	*w;
	size_t		 n, i, nd;
	long		 v;
	int		 sign;

	(void)lex_cfws(l);
	if (l->pos < l->len && (l->s[l->pos] == '+' || l->s[l->pos] == '-')) {
		sign = l->s[l->pos++] == '-' ? -1 : 1;
		if (l->pos >= l->len || !is_digit(l->s[l->pos]) ||
		    (v = lex_num(l, 4, 4, &nd)) == -1 || v % 100 > 59)
			return -1;
		*off = sign * ((v / 100) * 3600 + (v % 100) * 60);
		return 0;
	}
	if ((n = lex_word(l, &w)) == 0)
		return -1;
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		if (strlen(zones[i].name) == n &&
		    strncasecmp(w, zones[i].name, n) == 0) {
			*off = zones[i].hours * 3600L;
			return 0;
		}
	if (n == 1) {		/* military zones: RFC 5322 4.3 says -0000 */
		*off = 0;
		return 0;
	}
	return -1;
}

/* rfc5322_date_parse - RFC 5322 3.3 date-time (and 4.3) to Unix time */
int
rfc5322_date_parse(const char *s, size_t len, time_t *out)
{
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
		"Sep", "Oct", "Nov", "Dec"
	};
	static const int mdays[] = {
		31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	struct lex	 l = { s, len, 0 };
	const char	*w;
	size_t		 n, save, nd;
	long		 day, mon, year, hh, mm, ss = 0, off;
	long long	 t;

	if (s == NULL || out == NULL)
		return -1;
	/* [day-of-week ","] */
	save = l.pos;
	if (lex_word(&l, &w) > 0) {
		if (lex_char(&l, ',') == -1)
			return -1;
	} else
		l.pos = save;
	if ((day = lex_num(&l, 1, 2, NULL)) < 1 || day > 31)
		return -1;
	if ((n = lex_word(&l, &w)) != 3)
		return -1;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(w, months[mon], 3) == 0)
			break;
	if (mon == 12)
		return -1;
	if ((year = lex_num(&l, 2, 4, &nd)) == -1)
		return -1;
	if (nd == 2)			/* RFC 5322 4.3 */
		year += year < 50 ? 2000 : 1900;
	else if (nd == 3)
		year += 1900;
	if (year < 1900 || day > mdays[mon] || (mon == 1 && day == 29 &&
	    (year % 4 != 0 || (year % 100 == 0 && year % 400 != 0))))
		return -1;
	if ((hh = lex_num(&l, 2, 2, NULL)) == -1 || hh > 23 ||
	    lex_char(&l, ':') == -1 ||
	    (mm = lex_num(&l, 2, 2, NULL)) == -1 || mm > 59)
		return -1;
	save = l.pos;
	if (lex_char(&l, ':') == 0) {
		if ((ss = lex_num(&l, 2, 2, NULL)) == -1 || ss > 60)
			return -1;
	} else
		l.pos = save;
	if (zone_offset(&l, &off) == -1 || lex_cfws(&l) == -1 ||
	    l.pos != l.len)
		return -1;
	t = days_from_civil(year, mon + 1, day) * 86400LL + hh * 3600LL +
	    mm * 60LL + ss - off;
	if ((long long)(time_t)t != t)
		return -1;
	*out = (time_t)t;
	return 0;
}
