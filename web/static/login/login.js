// The staff login form: POST /api/auth/login, then go to the role's console.

import { goHome } from "./staff.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const body = { username: form.username.value.trim(), password: form.password.value };
  let resp;
  try {
    resp = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    error.textContent = "无法连接服务器，请检查网络。Cannot reach the server: check the network.";
    error.hidden = false;
    return;
  }
  if (!resp.ok) {
    const data = await resp.json().catch(() => ({}));
    error.textContent = data.error?.code === "bad_credentials"
      ? "用户名或密码错误。Wrong user name or password."
      : `登录失败 Login failed: ${data.error?.reason ?? resp.status}`;
    error.hidden = false;
    form.password.value = "";
    form.password.focus();
    return;
  }
  const data = await resp.json();
  sessionStorage.setItem("rc.csrf", data.csrf_token);
  goHome(data.user.role);
});
