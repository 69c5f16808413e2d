// The staff login form: POST /api/auth/login, then go to the role's console.

import { request, setCsrf } from "../shared/api.js";
import { both } from "../shared/i18n.js";
import { goHome } from "./staff.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const body = { username: form.username.value.trim(), password: form.password.value };
  let data;
  try {
    data = await request("/api/auth/login", { body });
  } catch (err) {
    error.hidden = false;
    if (err.code === "network") {
      error.textContent = both("login.network");
      return;
    }
    error.textContent = err.code === "bad_credentials" ? both("login.bad_credentials") : both("login.failed", { why: err.reason });
    form.password.value = "";
    form.password.focus();
    return;
  }
  setCsrf(data.csrf_token);
  goHome(data.user.role);
});
