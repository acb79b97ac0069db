// Landing page: translate it and wire the language switch.
import { applyDom, wireSwitch } from './i18n.js';

applyDom(document);
wireSwitch(document.getElementById('lang-switch'));
