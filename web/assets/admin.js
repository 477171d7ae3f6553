/* admin.js - only refreshes the operator pages, which work without it:
 * shows the <time> elements in the operator's local time, and reloads
 * a page marked data-refresh every 30 s unless the operator is typing
 * in a form. */
(function () {
	"use strict";
	var all = document.querySelectorAll("time[datetime]");
	var i, t, d, main = document.querySelector("main[data-refresh]");

	for (i = 0; i < all.length; i++) {
		t = all[i];
		d = new Date(t.getAttribute("datetime"));
		if (!isNaN(d.getTime())) {
			t.title = t.textContent;
			t.textContent = d.toLocaleString();
		}
	}
	if (!main)
		return;
	window.setTimeout(function again() {
		var a = document.activeElement;

		if (a && (a.tagName === "INPUT" || a.tagName === "SELECT")) {
			window.setTimeout(again, 30000);
			return;
		}
		window.location.reload();
	}, 30000);
}());
