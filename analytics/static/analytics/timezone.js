// The dashboard shows times in the viewer's zone: the browser names it in the
// `tz` cookie (an IANA name, e.g. Europe/Berlin); the server checks it and
// uses UTC for anything else (analytics/dashboard.py viewer_zone). When the
// page was rendered in another zone than the browser's, it is reloaded once
// (only if the cookie took: a browser that refuses cookies stays in UTC).
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!zone || zone.length > 64) {
    return;
  }
  var value = encodeURIComponent(zone);
  var current = document.cookie.match(/(?:^|;\s*)tz=([^;]*)/);
  if (current && current[1] === value) {
    return;
  }
  var secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "tz=" + value + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
  var took = document.cookie.match(/(?:^|;\s*)tz=([^;]*)/);
  var shown = document.body ? document.body.getAttribute("data-tz") : null;
  if (took && took[1] === value && shown && shown !== zone && document.body.hasAttribute("data-local-times")) {
    window.location.reload();
  }
})();
