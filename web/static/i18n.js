// Concord client strings. Chinese by default, English when the browser
// prefers English; the choice can be switched and is remembered.

const STRINGS = {
  en: {
    'lang.switch': '中文',
    'lang.switch.label': 'Switch language to Chinese',
    'brand': 'Concord',
    'title.join': 'Concord – mediation session',
    'title.index': 'Concord – online mediation',

    'index.heading': 'Online mediation, by video',
    'index.lead': 'Concord hosts video mediation sessions for consumer and online disputes. A mediator helps you and the other party talk and reach an agreement, without travelling.',
    'index.how': 'How to join',
    'index.step1': 'Open the join link you received by SMS, WeChat or e-mail. It is personal: do not share it.',
    'index.step2': 'Allow the camera and microphone when your browser asks.',
    'index.step3': 'Wait for the mediator. Speak as you would in a meeting room.',
    'index.nolink': 'No link? Contact the mediation institution handling your case.',
    'index.privacy': 'Nothing said in a session is recorded unless every participant agrees. The case file keeps only who attended and for how long.',

    'status.preflight': 'Checking camera and microphone…',
    'status.blocked': 'Camera or microphone blocked',
    'status.joining': 'Connecting…',
    'status.connected': 'Connected',
    'status.reconnecting': 'Connection lost – reconnecting…',
    'status.ended': 'Session ended',
    'status.left': 'You left the session',
    'status.error': 'Cannot join',

    'preflight.heading': 'Get ready to join',
    'preflight.intro': 'Your browser will ask to use your camera and microphone. Please allow it so the mediator and the other party can see and hear you.',
    'preflight.selfview': 'Your camera preview',
    'preflight.waiting': 'Waiting for permission…',
    'preflight.denied': 'We could not use your camera or microphone.',
    'preflight.denied.help': 'Tap the camera or lock icon next to the address bar, allow camera and microphone for this site, then tap "Try again". Close other apps that may be using the camera. You can also join with your microphone only.',
    'preflight.nomic': 'Your microphone is not available either. You can still join to watch and listen, and speak with the mediator another way.',
    'preflight.insecure': 'This page must be opened over a secure (https) link to use the camera. Please open the link exactly as you received it.',
    'preflight.notoken': 'This page needs a personal join link. Please open the link you received by SMS, WeChat or e-mail.',
    'btn.retry': 'Try again',
    'btn.audioOnly': 'Join with audio only',
    'btn.noMedia': 'Join without camera and microphone',

    'room.others': 'Other participants',
    'room.waiting': 'Waiting for the others to join…',
    'room.you': 'You',
    'room.people': 'People in this session',
    'room.offline': 'not here',
    'room.online': 'here',
    'room.youSuffix': '(you)',
    'room.nocam': 'Camera off',
    'room.tapSound': 'Tap to turn on sound',

    'role.mediator': 'Mediator',
    'side.applicant': 'Applicant',
    'side.respondent': 'Respondent',
    'side.neutral': 'Participant',

    'ctl.mute': 'Mute',
    'ctl.unmute': 'Unmute',
    'ctl.camOff': 'Stop video',
    'ctl.camOn': 'Start video',
    'ctl.leave': 'Leave',
    'controls.label': 'Call controls',

    'med.end': 'End session',
    'med.formTitle': 'Record the outcome and end the session',
    'med.result': 'Result',
    'med.terms': 'Agreed terms',
    'med.terms.hint': 'Required when the dispute is settled or partially settled: what each party will do, and by when.',
    'med.remedies': 'Remedies shown to the applicant',
    'med.remedies.hint': 'Choose at least one.',
    'med.submit': 'End session and record outcome',
    'med.saving': 'Saving…',
    'med.done': 'Outcome recorded',
    'med.err.terms': 'Please write the agreed terms.',
    'med.err.remedies': 'Please choose at least one remedy.',
    'med.err.generic': 'The outcome could not be recorded (HTTP {status}).',
    'med.err.network': 'The server could not be reached. Check your connection and try again.',

    'result.settled': 'Settled',
    'result.partially_settled': 'Partially settled',
    'result.not_settled': 'Not settled',
    'result.withdrawn': 'Withdrawn',
    'result.adjourned': 'Adjourned',

    'remedy.arbitration': 'Arbitration',
    'remedy.online_litigation': 'Online litigation',
    'remedy.complaint': 'Complaint to the authorities',

    'ended.heading': 'The session has ended: {result}',
    'ended.heading.plain': 'The session has ended',
    'ended.left.heading': 'You have left the session',
    'ended.left.text': 'The others can continue without you. If you left by mistake, you can rejoin with the same link.',
    'ended.rejoin': 'Rejoin',
    'ended.close': 'You can now close this page. Your camera and microphone are off.',
    'next.settled': 'The agreement will be written down with the agreed terms. Each party and the mediator confirm it. Within 30 days, both parties may jointly ask a court (judicial confirmation) or an arbitration body to confirm it, so that it can be enforced.',
    'next.partially_settled': 'The agreed part will be written into an agreement that each party and the mediator confirm. For the matters still in dispute you may use arbitration, online litigation or a complaint; the institution will tell you how.',
    'next.not_settled': 'No agreement was reached and the case is closed. You can still pursue your claim through arbitration, online litigation or a complaint to the authorities. The institution will send you the details.',
    'next.withdrawn': 'The application was withdrawn and the case is closed. Nothing more is needed from you.',
    'next.adjourned': 'The mediation will continue in another session. You will receive a new join link with the date and time.',
    'next.unknown': 'The mediation institution will contact you about the next steps.',

    'err.invalid_token': 'This join link is not valid. Please open the link exactly as you received it, or ask the institution for a new one.',
    'err.token_expired': 'This join link has expired. Please ask the mediation institution for a new link.',
    'err.link_not_found': 'This link is not known. Please open it exactly as you received it in the message.',
    'err.link_expired': 'This link has expired. Please ask the mediation institution for a new one.',
    'err.link_revoked': 'This link has been withdrawn. Please contact the mediation institution.',
    'err.rate_limited': 'Too many attempts. Please wait a minute and open the link again.',
    'err.not_found': 'This session could not be found. Please check the link or contact the institution.',
    'err.session_ended': 'This session has already ended.',
    'err.replaced': 'You joined this session from another device or tab, so this one was disconnected.',
    'err.internal': 'Something went wrong on the server. Please try again in a moment.',
    'err.negotiation_failed': 'Audio or video could not be set up. Reconnecting may help.',
    'err.rate_limited': 'Too many requests; please slow down.',
    'err.join_required': 'The connection was not accepted. Reconnecting…',
    'err.unknown': 'Error: {message}',
    'btn.dismiss': 'Dismiss',

    'status.consent': 'Please read the session rules',
    'status.lobby': 'In the waiting room',
    'status.removed': 'Removed from the session',
    'status.room_locked': 'The room is locked',

    'consent.heading': 'Before you join: the session rules',
    'consent.intro': 'Please read these three rules. After you agree, you wait until the mediator lets you in.',
    'consent.conf.title': 'Everything is confidential',
    'consent.conf.text': 'What is said and shown in this session stays in it. Do not pass it on to anyone who is not taking part. The mediator keeps it confidential too.',
    'consent.rec.title': 'Nobody records',
    'consent.rec.text': 'Nobody records this session: not you, not the other side, and not the mediator. No photos, screenshots, audio or video recordings. The case file keeps only who attended, when, and for how long.',
    'consent.how.title': 'How the session works',
    'consent.how.text': 'The mediator first talks with everyone together (the joint session). The mediator may also speak privately with each side in turn; while that happens, the other side waits and cannot see, hear or read anything of it. The mediator may mute a microphone to keep order. You can leave at any time.',
    'consent.accept': 'I agree to these rules',
    'consent.leave': 'If you do not agree, you can simply close this page.',

    'lobby.heading': 'Waiting room',
    'lobby.text': 'The mediator will let you in shortly.',
    'lobby.checking': 'The mediator can now see and hear you, to check who you are. Please look at the camera and have your ID card ready if asked.',
    'lobby.hint': 'Keep this page open. Nobody else can see or hear you while you wait.',

    'room.heading': 'Mediation session',
    'room.lobbyWaiting': 'Waiting room: {n} waiting for you to let them in.',
    'room.timer': 'Session time',
    'room.mutedByMediator': 'The mediator has muted your microphone. Tap Unmute when you want to speak.',
    'room.unmuteMe': 'Unmute',
    'room.notNow': 'Not now',
    'room.unmuteRequested': '{name} asks you to turn on your microphone.',
    'room.mutedBadge': 'muted by the mediator',
    'room.inCaucusBadge': 'in the private meeting',
    'room.identityCheck': 'Identity check (waiting room)',
    'tile.away': 'In a private meeting',
    'tile.outside': 'Waiting outside',
    'tile.connecting': 'Connecting…',

    'mode.joint': 'Joint session',
    'mode.joint.hint': 'Everyone in the session sees and hears each other.',
    'mode.caucusIn': 'Private meeting with the mediator',
    'mode.caucusIn.hint': 'The other side cannot see or hear you, and does not receive this chat.',
    'mode.caucusWaiting': 'The mediator is speaking privately with the other side; please wait',
    'mode.caucusWaiting.long': 'The mediator is speaking privately with the other side. Please wait: you will be back in the joint session as soon as the mediator returns.',
    'mode.caucusWaiting.hint': 'You do not see or hear the private meeting, and it does not see or hear you.',
    'mode.med.applicant': 'Private meeting with the applicant',
    'mode.med.respondent': 'Private meeting with the respondent',
    'mode.med.hint': 'The other side waits and receives nothing of this meeting.',

    'chat.heading': 'Chat',
    'chat.label': 'Message',
    'chat.send': 'Send',
    'chat.scope.joint': 'Everyone in the session reads these messages. Nothing is saved: the chat is gone when you reload or leave.',
    'chat.scope.caucus': 'Only the people in this private meeting read new messages. Nothing is saved.',
    'chat.scope.waiting': 'Only your own side reads new messages while you wait. Nothing is saved.',
    'chat.empty': 'No messages yet.',
    'chat.you': 'You',
    'chat.someone': 'Participant',

    'notes.heading': 'Private notes',
    'notes.hint': 'Only mediators see these notes.',
    'notes.label': 'New note',
    'notes.send': 'Add note',
    'notes.empty': 'No notes yet.',

    'med.heading': 'Mediator console',
    'med.lobby': 'Waiting room',
    'med.lobby.empty': 'Nobody is waiting.',
    'med.admit': 'Admit',
    'med.admitAll': 'Admit all',
    'med.deny': 'Deny',
    'med.check': 'Check identity on video',
    'med.check.stop': 'Stop identity check',
    'med.checked': 'Identity checked',
    'med.checked.done': 'Identity checked ✓',
    'med.consented': 'Accepted the session rules',
    'med.notConsented': 'Has not accepted the rules yet',
    'med.checking': 'Identity check in progress',
    'med.mode': 'Session mode',
    'med.mode.joint': 'Joint session',
    'med.mode.applicant': 'Private: applicant',
    'med.mode.respondent': 'Private: respondent',
    'med.mode.hint': 'In a private meeting the other side sees, hears and reads nothing of it.',
    'med.lock.heading': 'Room',
    'med.lock': 'Lock the room',
    'med.unlock': 'Room locked – unlock',
    'med.lock.hint': 'A locked room lets nobody new in; those already admitted can reconnect.',
    'med.mute': 'Mute',
    'med.askUnmute': 'Ask to unmute',
    'med.remove': 'Remove',
    'med.confirmRemove': 'Remove {name} from this session? Their link will stop working for it.',
    'med.confirmDeny': 'Deny {name} entry? Their link will stop working for this session.',
    'med.cancel': 'Cancel',
    'med.asked': 'Asked {name} to unmute.',

    'err.removed.heading': 'You are no longer in this session',
    'err.removed': 'The mediator has removed you from this session, and this link no longer works for it. If you think this is a mistake, please contact the mediation institution.',
    'err.room_locked.heading': 'The room is locked',
    'err.room_locked': 'The mediator has locked the room, so nobody new can come in at the moment. Please try again later or contact the mediation institution.',
    'err.no_consent': 'This person has not accepted the session rules yet. You can admit them once they have.',
    'err.not_allowed': 'Only the mediator can do that.',
    'err.not_found.person': 'That person is no longer in the session.',
    'err.bad_message': 'That did not work. Please try again.',
    'err.shutting_down': 'The server is restarting. Reconnecting…',
  },
  zh: {
    'lang.switch': 'English',
    'lang.switch.label': '切换为英文',
    'brand': 'Concord 在线调解',
    'title.join': 'Concord – 调解会议',
    'title.index': 'Concord – 在线调解',

    'index.heading': '视频在线调解',
    'index.lead': 'Concord 为消费纠纷和网络纠纷提供视频调解。调解员帮助您和对方沟通、达成协议，无需到场。',
    'index.how': '如何参加',
    'index.step1': '打开您通过短信、微信或邮件收到的参会链接。链接仅限本人使用，请勿转发。',
    'index.step2': '浏览器询问时，请允许使用摄像头和麦克风。',
    'index.step3': '等待调解员。像在调解室一样正常发言即可。',
    'index.nolink': '没有链接？请联系办理您案件的调解机构。',
    'index.privacy': '除非所有参与人同意，会议内容不会被录制。案件记录只保存参会人员和时长。',

    'status.preflight': '正在检查摄像头和麦克风…',
    'status.blocked': '摄像头或麦克风被阻止',
    'status.joining': '正在连接…',
    'status.connected': '已连接',
    'status.reconnecting': '连接中断，正在重新连接…',
    'status.ended': '会议已结束',
    'status.left': '您已离开会议',
    'status.error': '无法加入',

    'preflight.heading': '准备加入',
    'preflight.intro': '浏览器会询问是否允许使用摄像头和麦克风。请选择“允许”，以便调解员和对方看到、听到您。',
    'preflight.selfview': '您的摄像头画面',
    'preflight.waiting': '等待授权…',
    'preflight.denied': '无法使用您的摄像头或麦克风。',
    'preflight.denied.help': '请点击地址栏旁的摄像头或锁形图标，允许本网站使用摄像头和麦克风，然后点“重试”。请关闭其他可能占用摄像头的应用。您也可以只用麦克风加入。',
    'preflight.nomic': '麦克风也无法使用。您仍可加入旁听，并通过其他方式与调解员沟通。',
    'preflight.insecure': '必须通过安全（https）链接打开本页面才能使用摄像头。请按收到的原样打开链接。',
    'preflight.notoken': '本页面需要个人参会链接。请打开您通过短信、微信或邮件收到的链接。',
    'btn.retry': '重试',
    'btn.audioOnly': '仅用语音加入',
    'btn.noMedia': '不开摄像头和麦克风加入',

    'room.others': '其他参会人',
    'room.waiting': '正在等待其他人加入…',
    'room.you': '我',
    'room.people': '参会人员',
    'room.offline': '未在场',
    'room.online': '在场',
    'room.youSuffix': '（我）',
    'room.nocam': '摄像头已关闭',
    'room.tapSound': '点此开启声音',

    'role.mediator': '调解员',
    'side.applicant': '申请人',
    'side.respondent': '被申请人',
    'side.neutral': '参会人',

    'ctl.mute': '静音',
    'ctl.unmute': '取消静音',
    'ctl.camOff': '关闭视频',
    'ctl.camOn': '开启视频',
    'ctl.leave': '离开',
    'controls.label': '会议控制',

    'med.end': '结束会议',
    'med.formTitle': '记录调解结果并结束会议',
    'med.result': '调解结果',
    'med.terms': '协议内容',
    'med.terms.hint': '调解成功或部分成功时必填：各方履行的事项和期限。',
    'med.remedies': '告知申请人的救济途径',
    'med.remedies.hint': '至少选择一项。',
    'med.submit': '结束会议并记录结果',
    'med.saving': '正在保存…',
    'med.done': '调解结果已记录',
    'med.err.terms': '请填写协议内容。',
    'med.err.remedies': '请至少选择一项救济途径。',
    'med.err.generic': '调解结果未能记录（HTTP {status}）。',
    'med.err.network': '无法连接服务器，请检查网络后重试。',

    'result.settled': '调解成功',
    'result.partially_settled': '部分调解成功',
    'result.not_settled': '调解不成功',
    'result.withdrawn': '撤回申请',
    'result.adjourned': '延期调解',

    'remedy.arbitration': '仲裁',
    'remedy.online_litigation': '在线诉讼',
    'remedy.complaint': '向主管部门投诉',

    'ended.heading': '会议已结束：{result}',
    'ended.heading.plain': '会议已结束',
    'ended.left.heading': '您已离开会议',
    'ended.left.text': '其他人可以继续会议。如果您是误操作离开，可以用同一链接重新加入。',
    'ended.rejoin': '重新加入',
    'ended.close': '您现在可以关闭本页面。摄像头和麦克风已关闭。',
    'next.settled': '调解员将根据协议内容制作调解协议，由各方和调解员确认。自协议生效之日起30日内，双方可以共同向人民法院申请司法确认，或向仲裁机构申请确认，以便强制执行。',
    'next.partially_settled': '已达成一致的部分将写入调解协议，由各方和调解员确认。仍有争议的事项，您可以通过仲裁、在线诉讼或投诉解决，调解机构会告知具体方式。',
    'next.not_settled': '未能达成协议，案件已结案。您仍可通过仲裁、在线诉讼或向主管部门投诉主张权利，调解机构会将具体方式发送给您。',
    'next.withdrawn': '申请已撤回，案件已结案，您无需再做任何事。',
    'next.adjourned': '调解将在下一次会议继续。您将收到新的参会链接和时间。',
    'next.unknown': '调解机构会与您联系后续事宜。',

    'err.invalid_token': '参会链接无效。请按收到的原样打开链接，或向调解机构索取新链接。',
    'err.token_expired': '参会链接已过期。请向调解机构索取新链接。',
    'err.link_not_found': '无法识别此链接。请按短信中收到的原样打开。',
    'err.link_expired': '此链接已过期。请向调解机构索取新链接。',
    'err.link_revoked': '此链接已被撤回。请联系调解机构。',
    'err.rate_limited': '尝试次数过多。请稍候一分钟再打开链接。',
    'err.not_found': '找不到该会议。请检查链接或联系调解机构。',
    'err.session_ended': '该会议已经结束。',
    'err.replaced': '您已在其他设备或页面加入本会议，此页面已断开。',
    'err.internal': '服务器出现问题，请稍后重试。',
    'err.negotiation_failed': '音视频未能建立，重新连接可能有帮助。',
    'err.rate_limited': '操作过于频繁，请稍后再试。',
    'err.join_required': '连接未被接受，正在重新连接…',
    'err.unknown': '错误：{message}',
    'btn.dismiss': '关闭',

    'status.consent': '请阅读会议规则',
    'status.lobby': '正在等候室',
    'status.removed': '已被移出会议',
    'status.room_locked': '会议室已锁定',

    'consent.heading': '加入前请阅读：会议规则',
    'consent.intro': '请阅读以下三条规则。您同意后，请在等候室等待调解员请您进入。',
    'consent.conf.title': '全程保密',
    'consent.conf.text': '本次会议中所说和所展示的内容仅限于本次会议。请勿告知未参加会议的任何人。调解员同样负有保密义务。',
    'consent.rec.title': '任何人不得录制',
    'consent.rec.text': '任何人都不得录制本次会议：您不可以，对方不可以，调解员也不可以。请勿拍照、截屏、录音或录像。案件记录只保存参会人员、时间和时长。',
    'consent.how.title': '会议如何进行',
    'consent.how.text': '调解员先与各方一起沟通（联席会议）。调解员也可能分别与每一方单独沟通（背对背调解）；此时另一方在外等候，看不到、听不到、也读不到单独沟通的任何内容。调解员可以为维持秩序关闭某人的麦克风。您可以随时离开。',
    'consent.accept': '我同意以上规则',
    'consent.leave': '如果您不同意，直接关闭本页面即可。',

    'lobby.heading': '等候室',
    'lobby.text': '调解员很快会请您进入。',
    'lobby.checking': '调解员现在可以看到、听到您，以核实您的身份。请看向摄像头，如被要求请准备好身份证件。',
    'lobby.hint': '请保持本页面打开。等候期间其他人看不到也听不到您。',

    'room.heading': '调解会议',
    'room.lobbyWaiting': '等候室：{n} 人在等您准许进入。',
    'room.timer': '会议时长',
    'room.mutedByMediator': '调解员已关闭您的麦克风。需要发言时请点“打开麦克风”。',
    'room.unmuteMe': '打开麦克风',
    'room.notNow': '暂不',
    'room.unmuteRequested': '{name}请您打开麦克风。',
    'room.mutedBadge': '已被调解员静音',
    'room.inCaucusBadge': '在单独沟通中',
    'room.identityCheck': '身份核实（等候室）',
    'tile.away': '正在单独沟通',
    'tile.outside': '在外等候',
    'tile.connecting': '正在连接…',

    'mode.joint': '联席会议',
    'mode.joint.hint': '会议中的所有人都能互相看到、听到。',
    'mode.caucusIn': '与调解员单独沟通',
    'mode.caucusIn.hint': '对方看不到、听不到您，也收不到这里的聊天消息。',
    'mode.caucusWaiting': '调解员正在与对方单独沟通，请稍候',
    'mode.caucusWaiting.long': '调解员正在与对方单独沟通，请稍候。调解员回来后您将自动回到联席会议。',
    'mode.caucusWaiting.hint': '您看不到也听不到单独沟通的内容，对方也看不到、听不到您。',
    'mode.med.applicant': '正在与申请人单独沟通',
    'mode.med.respondent': '正在与被申请人单独沟通',
    'mode.med.hint': '另一方在外等候，收不到本次单独沟通的任何内容。',

    'chat.heading': '聊天',
    'chat.label': '消息',
    'chat.send': '发送',
    'chat.scope.joint': '会议中的所有人都能看到这些消息。消息不会保存：刷新或离开后即消失。',
    'chat.scope.caucus': '新消息只有本次单独沟通中的人能看到。消息不会保存。',
    'chat.scope.waiting': '等候期间，新消息只有您这一方的人能看到。消息不会保存。',
    'chat.empty': '还没有消息。',
    'chat.you': '我',
    'chat.someone': '参会人',

    'notes.heading': '调解员笔记',
    'notes.hint': '只有调解员能看到这些笔记。',
    'notes.label': '新笔记',
    'notes.send': '添加笔记',
    'notes.empty': '还没有笔记。',

    'med.heading': '调解员控制台',
    'med.lobby': '等候室',
    'med.lobby.empty': '没有人在等候。',
    'med.admit': '准许进入',
    'med.admitAll': '全部准许进入',
    'med.deny': '拒绝',
    'med.check': '视频核实身份',
    'med.check.stop': '结束身份核实',
    'med.checked': '身份已核实',
    'med.checked.done': '身份已核实 ✓',
    'med.consented': '已同意会议规则',
    'med.notConsented': '尚未同意会议规则',
    'med.checking': '正在核实身份',
    'med.mode': '会议模式',
    'med.mode.joint': '联席会议',
    'med.mode.applicant': '单独沟通：申请人',
    'med.mode.respondent': '单独沟通：被申请人',
    'med.mode.hint': '单独沟通时，另一方看不到、听不到、也读不到其中的任何内容。',
    'med.lock.heading': '会议室',
    'med.lock': '锁定会议室',
    'med.unlock': '会议室已锁定 – 解锁',
    'med.lock.hint': '锁定后新的人无法进入；已准许进入的人仍可重新连接。',
    'med.mute': '静音',
    'med.askUnmute': '请其开麦',
    'med.remove': '移出',
    'med.confirmRemove': '将{name}移出本次会议？其链接将对本次会议失效。',
    'med.confirmDeny': '拒绝{name}进入？其链接将对本次会议失效。',
    'med.cancel': '取消',
    'med.asked': '已请{name}打开麦克风。',

    'err.removed.heading': '您已不在本次会议中',
    'err.removed': '调解员已将您移出本次会议，此链接对本次会议已失效。如您认为有误，请联系调解机构。',
    'err.room_locked.heading': '会议室已锁定',
    'err.room_locked': '调解员已锁定会议室，目前新的人无法进入。请稍后再试，或联系调解机构。',
    'err.no_consent': '此人尚未同意会议规则。同意后即可准许其进入。',
    'err.not_allowed': '只有调解员可以进行此操作。',
    'err.not_found.person': '此人已不在会议中。',
    'err.bad_message': '操作未成功，请重试。',
    'err.shutting_down': '服务器正在重启，正在重新连接…',
  },
};

const KEY = 'concord.lang';

function initialLang() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved === 'en' || saved === 'zh') return saved;
  } catch (_) { /* storage may be blocked */ }
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  // Chinese by default; English when the browser prefers English.
  return String(langs[0] || '').toLowerCase().startsWith('en') ? 'en' : 'zh';
}

let lang = initialLang();
const listeners = new Set();

export function getLang() { return lang; }

export function setLang(l) {
  if (l !== 'en' && l !== 'zh') return;
  lang = l;
  try { localStorage.setItem(KEY, l); } catch (_) { /* ignore */ }
  applyDom(document);
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) { listeners.add(fn); }

// t looks a key up and fills {name} placeholders from vars.
export function t(key, vars) {
  let s = STRINGS[lang][key];
  if (s === undefined) s = STRINGS.en[key];
  if (s === undefined) return key;
  if (vars) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (vars[name] !== undefined ? String(vars[name]) : m));
  }
  return s;
}

// applyDom translates elements marked with data-i18n (text),
// data-i18n-label (aria-label), data-i18n-title (title attribute).
export function applyDom(root) {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  const title = document.querySelector('meta[name="concord-title"]');
  if (title) document.title = t(title.content);
}

// wireSwitch makes a button toggle the language.
export function wireSwitch(button) {
  if (!button) return;
  const render = () => {
    // The visible name is the accessible name; the title says more.
    button.textContent = t('lang.switch');
    button.title = t('lang.switch.label');
    button.lang = lang === 'zh' ? 'en' : 'zh-CN';
  };
  render();
  onLangChange(render);
  button.addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh'));
}
