// A confirming form of the console sends once: its buttons are disabled as it
// is submitted (a nicety; the server takes each form's one-time token once, so
// a second POST acts on nothing anyway). Served from 'self': the content
// security policy allows no inline script.
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-submit-once]")) {
    form.addEventListener("submit", () => {
      // After this event's default action has started the submission.
      setTimeout(() => {
        for (const button of form.querySelectorAll("input[type=submit], button[type=submit], button:not([type])")) {
          button.disabled = true;
        }
      }, 0);
    });
  }
});
