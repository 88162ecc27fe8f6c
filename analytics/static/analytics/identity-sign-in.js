// The dashboard's Google and GitHub sign-in: the Firebase Auth web SDK
// (vendored; the page's import map points these addresses at our static
// files) opens Identity Platform's sign-in pop-up, and the ID token it gives is
// posted to the server, which verifies it and starts the dashboard session.
// Nothing is kept in the browser: the SDK's own session lives in memory only.
import { initializeApp } from "https://www.gstatic.com/firebasejs/13.2.0/firebase-app.js";
import {
  GithubAuthProvider,
  GoogleAuthProvider,
  TotpMultiFactorGenerator,
  browserPopupRedirectResolver,
  getMultiFactorResolver,
  inMemoryPersistence,
  initializeAuth,
  signInWithPopup,
} from "https://www.gstatic.com/firebasejs/13.2.0/firebase-auth.js";

const config = JSON.parse(document.getElementById("identity-config").textContent);
const form = document.getElementById("identity-form");
const secondFactor = document.getElementById("second-factor");
const status = document.getElementById("identity-status");
const auth = initializeAuth(initializeApp(config), {
  persistence: inMemoryPersistence,
  popupRedirectResolver: browserPopupRedirectResolver,
});
const PROVIDERS = {
  "google.com": () => new GoogleAuthProvider(),
  "github.com": () => new GithubAuthProvider(),
};
const MESSAGES = {
  "auth/popup-blocked": "The browser blocked the sign-in window; allow pop-ups for this site and try again.",
  "auth/popup-closed-by-user": "The sign-in window was closed before signing in.",
  "auth/cancelled-popup-request": "The sign-in window was closed before signing in.",
  "auth/account-exists-with-different-credential":
    "This email signs in with another provider; use that one.",
  "auth/network-request-failed": "Identity Platform could not be reached; check the connection and try again.",
  "auth/invalid-verification-code": "That code is not right; type the code your app shows now.",
  "auth/unauthorized-domain": "This server's address is not an authorized domain of the Identity Platform project.",
};

function say(text) {
  status.textContent = text;
}

function sayError(error) {
  say(MESSAGES[error.code] || `The sign-in did not complete (${error.code || error.message}). Try again.`);
}

async function signedIn(credential) {
  say("Signed in; opening the dashboard…");
  form.elements.id_token.value = await credential.user.getIdToken();
  form.submit();
}

function askSecondFactor(resolver) {
  const hint = resolver.hints.find((h) => h.factorId === TotpMultiFactorGenerator.FACTOR_ID);
  if (!hint) {
    say("Your account's second factor is not an authenticator app; enrol one (TOTP) to sign in here.");
    return;
  }
  secondFactor.hidden = false;
  secondFactor.elements.code.focus();
  secondFactor.onsubmit = async (event) => {
    event.preventDefault();
    try {
      const assertion = TotpMultiFactorGenerator.assertionForSignIn(hint.uid, secondFactor.elements.code.value);
      await signedIn(await resolver.resolveSignIn(assertion));
    } catch (error) {
      sayError(error);
    }
  };
}

for (const button of form.querySelectorAll("[data-provider]")) {
  button.disabled = false;
  button.addEventListener("click", async () => {
    say("Signing in: finish in the window that opened…");
    try {
      await signedIn(await signInWithPopup(auth, PROVIDERS[button.dataset.provider]()));
    } catch (error) {
      if (error.code === "auth/multi-factor-auth-required") {
        askSecondFactor(getMultiFactorResolver(auth, error));
      } else {
        sayError(error);
      }
    }
  });
}
