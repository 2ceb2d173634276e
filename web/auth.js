// The two views shown without a session: log in, register.

import { api } from './api.js';
import { $, clearErrors, showErrors } from './dom.js';

const LOGIN = {
  fields: {
    login: { error: 'login-login-error', input: 'login-login' },
    password: { error: 'login-password-error', input: 'login-password' },
  },
  general: 'login-error',
};

const REGISTER = {
  fields: {
    nickname: { error: 'reg-nickname-error', input: 'reg-nickname' },
    age: { error: 'reg-age-error', input: 'reg-age' },
    gender: { error: 'reg-gender-error', input: 'reg-gender' },
    first_name: { error: 'reg-first_name-error', input: 'reg-first-name' },
    last_name: { error: 'reg-last_name-error', input: 'reg-last-name' },
    email: { error: 'reg-email-error', input: 'reg-email' },
    password: { error: 'reg-password-error', input: 'reg-password' },
  },
  general: 'register-error',
};

let signedIn = () => {};

/** Wires the forms; `onSignedIn(me)` runs after a login or registration. */
export function initAuth(onSignedIn) {
  signedIn = onSignedIn;
  $('show-register').addEventListener('click', () => showAuth('register'));
  $('show-login').addEventListener('click', () => showAuth('login'));
  $('login-form').addEventListener('submit', login);
  $('register-form').addEventListener('submit', register);
}

/** Shows the login (or register) view and nothing else. */
export function showAuth(which = 'login') {
  $('app').hidden = true;
  $('auth').hidden = false;
  $('login-view').hidden = which !== 'login';
  $('register-view').hidden = which !== 'register';
  document.title = which === 'login' ? 'Log in · Forum' : 'Create an account · Forum';
  $(which === 'login' ? 'login-title' : 'register-title').focus();
}

export function hideAuth() {
  $('auth').hidden = true;
  for (const form of ['login-form', 'register-form']) $(form).reset();
  clearErrors(LOGIN);
  clearErrors(REGISTER);
}

async function withBusy(form, work) {
  const button = form.querySelector('button[type=submit]');
  if (button.disabled) return;
  button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    await work();
  } finally {
    button.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

async function login(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withBusy(form, async () => {
    clearErrors(LOGIN);
    try {
      const answer = await api(
        'POST',
        '/api/auth/login',
        { login: $('login-login').value.trim(), password: $('login-password').value },
        { auth: false },
      );
      signedIn(answer.user);
    } catch (e) {
      if (e.code === 'invalid_credentials') {
        $('login-error').textContent = 'Wrong nickname, e-mail or password.';
        $('login-password').select();
      } else {
        showErrors(e, LOGIN);
      }
    }
  });
}

/** The age as the API wants it: an integer when it is one, else as typed. */
function age(value) {
  const v = value.trim();
  if (v === '') return null;
  return /^-?\d{1,9}$/.test(v) ? Number(v) : v;
}

async function register(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await withBusy(form, async () => {
    clearErrors(REGISTER);
    const body = {
      nickname: $('reg-nickname').value.trim(),
      age: age($('reg-age').value),
      gender: $('reg-gender').value,
      first_name: $('reg-first-name').value,
      last_name: $('reg-last-name').value,
      email: $('reg-email').value.trim(),
      password: $('reg-password').value,
    };
    try {
      const answer = await api('POST', '/api/auth/register', body, { auth: false });
      signedIn(answer.user);
    } catch (e) {
      showErrors(e, REGISTER);
    }
  });
}
