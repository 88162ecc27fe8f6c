// A stand-in for Google's iframe library (https://apis.google.com/js/api.js),
// served to the browser by the test in its place. The Firebase Auth SDK uses
// gapi.iframes to open Identity Platform's hidden iframe on the auth domain,
// which hands it the pop-up's sign-in result as an "authEvent". Here the
// stand-in pop-up (handler.html) posts that event to this window directly,
// and this object passes it to the handler the SDK registered: the SDK's own
// code runs from there on (it asks identitytoolkit, answered by the test).
(function () {
  const handlers = {};
  const iframe = {
    restyle: async () => {},
    ping: (callback) => {
      callback();
      return Promise.resolve();
    },
    register: (name, handler) => {
      handlers[name] = handler;
    },
    send: (name, data, callback) => {
      try {
        if (name === "webStorageSupport") callback([{ webStorageSupport: true }]);
      } catch (error) {
        // The SDK's callback throws after answering, as Google's library swallows.
      }
    },
  };
  window.gapi = {
    load: (module, options) => setTimeout(options.callback, 0),
    iframes: {
      CROSS_ORIGIN_IFRAMES_FILTER: () => true,
      Iframe: function Iframe() {},
      getContext: () => ({ open: (options, opened) => opened(iframe) }),
    },
  };
  window.addEventListener("message", (event) => {
    const authEvent = event.data && event.data.standInAuthEvent;
    if (authEvent && handlers.authEvent) handlers.authEvent({ authEvent });
  });
  const onload = new URL(document.currentScript.src).searchParams.get("onload");
  if (onload && window[onload]) window[onload]();
})();
