/* track.js - only enhances the tracking page, which works without it:
 * fills the secret from the link's fragment (/t/ENVID#SECRET: the
 * fragment never reaches the server; SECRET is base64url, or base64
 * percent-encoded) and posts the form, then shows every <time> element
 * in the visitor's local time ("YYYY-MM-DD HH:MM:SS", the UTC text in
 * its title) and says so in #tz-note. */
(function () {
	"use strict";
	var form = document.getElementById("track-form");
	var secret = document.getElementById("secret");
	var envid = document.getElementById("envid");
	var h = window.location.hash;
	var i, t, d, all, note, zone, n = 0;

	function two(x) {
		return (x < 10 ? "0" : "") + x;
	}

	if (form && secret && envid && h.length > 1 && envid.value &&
	    !secret.value) {
		try {
			secret.value = decodeURIComponent(h.slice(1));
		} catch (e) {
			secret.value = h.slice(1);
		}
		/* the secret leaves the address bar and the history */
		if (window.history && window.history.replaceState)
			window.history.replaceState(null, "",
			    window.location.pathname);
		form.submit();
		return;
	}
	all = document.querySelectorAll("time[datetime]");
	for (i = 0; i < all.length; i++) {
		t = all[i];
		d = new Date(t.getAttribute("datetime"));
		if (!isNaN(d.getTime())) {
			t.title = t.textContent;
			t.textContent = d.getFullYear() + "-" +
			    two(d.getMonth() + 1) + "-" + two(d.getDate()) +
			    " " + two(d.getHours()) + ":" +
			    two(d.getMinutes()) + ":" + two(d.getSeconds());
			n++;
		}
	}
	note = document.getElementById("tz-note");
	if (note && n > 0) {
		zone = "";
		try {
			zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
		} catch (e) {
			zone = "";
		}
		note.textContent = "Times in your time zone" +
		    (zone ? " (" + zone + ")" : "") +
		    "; the UTC time is in each time's tooltip.";
	}
}());
