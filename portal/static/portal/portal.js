// Times in the viewer's time zone; the UTC time stays in the title (shown on hover).
// Without this script every time reads in UTC, which is right too.
document.querySelectorAll("time[datetime]").forEach(function (element) {
  var moment = new Date(element.getAttribute("datetime"));
  if (isNaN(moment)) return;
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  element.textContent = moment.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  element.setAttribute("title", element.getAttribute("title") + (zone ? " (shown in " + zone + ")" : ""));
});
