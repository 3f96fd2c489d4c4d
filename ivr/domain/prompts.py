"""The prompt catalogue: every sentence the IVR speaks, per language.

Prompts without ``{params}`` are pre-recorded by ``ivr sounds build`` into
``sounds/<lang>/<key>.wav``; prompts with params are rendered and synthesised at
run time (and cached by the speech layer).
"""

from __future__ import annotations

from collections.abc import Sequence

from ivr.domain.model import IntentSpec, Language
from ivr.domain.ports import Prompt

PROMPTS: dict[str, dict[str, str]] = {
    # Said by audio channels when the answer takes longer than IVR_ACK_AFTER_MS after
    # the caller's last word (a slow CRM or matcher must not leave dead air).
    "one_moment": {
        "en": "One moment, let me check that.",
        "nl": "Een moment, ik kijk het even na.",
    },
    "greeting": {
        "en": "Welcome to Kanaal customer service.",
        "nl": "Welkom bij de klantenservice van Kanaal.",
    },
    "greeting_named": {
        "en": "Hello {name}, welcome to Kanaal customer service.",
        "nl": "Goedendag {name}, welkom bij de klantenservice van Kanaal.",
    },
    "ask_customer_no": {
        "en": "Please key in your customer number followed by the hash key. "
        "If you don't have it at hand, just press hash.",
        "nl": "Toets uw klantnummer in, gevolgd door een hekje. "
        "Heeft u het niet bij de hand? Toets dan alleen een hekje.",
    },
    # Offered to callers the CRM does not know, right after the greeting, in the other
    # language (rendered and recorded in the language it offers).
    "language_offer": {
        "en": "For English, press 1.",
        "nl": "Voor Nederlands, druk 2.",
    },
    # The caller's language has no speech recogniser on this node: keys only.
    "keypad_only": {
        "en": "Speech recognition is not available in English here, so please use the "
              "keys on your phone.",
        "nl": "Spraakherkenning in het Nederlands is hier helaas niet beschikbaar. "
              "Kies daarom met de toetsen van uw telefoon.",
    },
    "customer_no_unknown": {
        "en": "Sorry, I could not find that customer number.",
        "nl": "Sorry, dat klantnummer kan ik niet vinden.",
    },
    "ask_pin": {
        "en": "For your security, please key in your four digit PIN.",
        "nl": "Toets voor uw veiligheid uw viercijferige pincode in.",
    },
    "pin_wrong": {
        "en": "That PIN was not correct.",
        "nl": "Die pincode is niet juist.",
    },
    "proactive_order": {
        "en": "I see that your order {order_no} is {status}{eta_phrase}.",
        "nl": "Ik zie dat uw bestelling {order_no} {status} is{eta_phrase}.",
    },
    "proactive_outage": {
        "en": "Please note: {message}",
        "nl": "Let op: {message}",
    },
    # Offered right after an outage announcement; the caller may also just ask.
    "outage_updates_offer": {
        "en": "Would you like a {channel} when it is fixed, instead of waiting? Say yes or "
              "press 1. Or tell me how I can help you.",
        "nl": "Wilt u een {channel} als het is opgelost, in plaats van te wachten? Zeg ja of "
              "toets 1. Of vertel me waarmee ik u kan helpen.",
    },
    "outage_updates_sent": {
        "en": "Done: you will get a {channel} when it is fixed. Is there anything else? Tell "
              "me now, press 0 for a person, or simply hang up.",
        "nl": "Geregeld: u krijgt een {channel} als het is opgelost. Kan ik nog iets voor u "
              "doen? Zeg het nu, toets 0 voor een medewerker, of hang gewoon op.",
    },
    "sms_outage_updates": {
        "en": "Kanaal: {message} We will text you again when it is fixed.",
        "nl": "Kanaal: {message} We sturen u weer een bericht als het is opgelost.",
    },
    "sms_outage_update": {
        "en": "Kanaal update: {message}",
        "nl": "Kanaal update: {message}",
    },
    "sms_outage_ended": {
        "en": "Kanaal: the outage in {region} has been fixed. Thank you for your patience.",
        "nl": "Kanaal: de storing in {region} is verholpen. Bedankt voor uw geduld.",
    },
    "ask_question": {
        "en": "In a few words, how can I help you?",
        "nl": "Vertel me in een paar woorden waarmee ik u kan helpen.",
    },
    "ask_question_again": {
        "en": "Sorry, I didn't catch that. Please tell me briefly what your call is about, "
        "for example: where is my order, or: I want to change my address.",
        "nl": "Sorry, dat verstond ik niet. Vertel kort waar uw vraag over gaat, "
        "bijvoorbeeld: waar is mijn bestelling, of: ik wil mijn adres wijzigen.",
    },
    "no_input": {
        "en": "I didn't hear anything.",
        "nl": "Ik hoorde niets.",
    },
    "confirm_intent": {
        "en": "Is your question about {label}? Please say yes or no.",
        "nl": "Gaat uw vraag over {label}? Zeg ja of nee.",
    },
    "keypad_menu": {
        "en": "Let's try the keypad. {options}",
        "nl": "We proberen het met de toetsen. {options}",
    },
    "keypad_option": {
        "en": "For {label}, press {digit}.",
        "nl": "Voor {label}, toets {digit}.",
    },
    "order_status": {
        "en": "Your order {order_no} is {status}{eta_phrase}.",
        "nl": "Uw bestelling {order_no} is {status}{eta_phrase}.",
    },
    "no_orders": {
        "en": "I can't find an open order for you.",
        "nl": "Ik kan geen openstaande bestelling voor u vinden.",
    },
    "order_needs_identification": {
        "en": "To look up your order I need to know who you are.",
        "nl": "Om uw bestelling op te zoeken moet ik weten wie u bent.",
    },
    "outage_none": {
        "en": "There is no known outage in your area at the moment.",
        "nl": "Er is op dit moment geen storing bekend in uw regio.",
    },
    "outage_info": {
        "en": "{message}",
        "nl": "{message}",
    },
    "opening_hours": {
        "en": "{text}",
        "nl": "{text}",
    },
    "answer": {
        "en": "{text}",
        "nl": "{text}",
    },
    "was_helpful": {
        "en": "Did that answer your question? Please say yes or no.",
        "nl": "Heeft dit uw vraag beantwoord? Zeg ja of nee.",
    },
    "glad_to_help": {
        "en": "Glad I could help.",
        "nl": "Fijn dat ik u kon helpen.",
    },
    "link_sent": {
        "en": "I have sent you a message by {channel} with a link where you can arrange this "
        "yourself, right away. If you would rather speak to a colleague, say agent or press 1. "
        "Otherwise you can hang up now.",
        "nl": "Ik heb u een {channel}-bericht gestuurd met een link waarmee u dit direct zelf "
        "regelt. Wilt u toch liever een medewerker spreken, zeg dan medewerker of toets 1. "
        "Anders kunt u nu ophangen.",
    },
    "link_failed": {
        "en": "I'm sorry, I could not send you a message.",
        "nl": "Het spijt me, ik kon u geen bericht sturen.",
    },
    "chat_link_sent": {
        "en": "A colleague can help you faster in our live chat. I have sent you a message by "
        "{channel} with a link to the chat, where your question is already waiting. If you "
        "would still rather wait for a colleague on the phone, say agent or press 1. "
        "Otherwise you can hang up now.",
        "nl": "Een collega helpt u sneller via onze live chat. Ik heb u een {channel}-bericht "
        "gestuurd met een link naar de chat, waar uw vraag al klaarstaat. Wilt u toch liever "
        "wachten op een medewerker aan de telefoon, zeg dan medewerker of toets 1. Anders "
        "kunt u nu ophangen.",
    },
    "transfer": {
        "en": "I'm connecting you with a colleague. Topic: {label}. "
        "They will see your question, so you won't have to repeat it.",
        "nl": "Ik verbind u door met een collega. Onderwerp: {label}. "
        "Uw vraag is al doorgegeven, u hoeft die niet te herhalen.",
    },
    "transfer_generic": {
        "en": "I'm connecting you with a colleague.",
        "nl": "Ik verbind u door met een collega.",
    },
    "transfer_sensitive": {
        "en": "I'm sorry for your loss. I'm connecting you with a colleague personally.",
        "nl": "Gecondoleerd met uw verlies. Ik verbind u persoonlijk door met een collega.",
    },
    "queue_position": {
        "en": "You are number {position} in line. The expected waiting time is {wait}.",
        "nl": "U bent nummer {position} in de rij. De verwachte wachttijd is {wait}.",
    },
    "wait_minutes": {
        "en": "about {minutes} minutes",
        "nl": "ongeveer {minutes} minuten",
    },
    "wait_under_minute": {
        "en": "less than a minute",
        "nl": "minder dan een minuut",
    },
    # Whispered to callers waiting in the queue (ivr.contact_centre.announcer).
    "queue_update": {
        "en": "Thank you for waiting. You are now number {position} in line; the expected "
        "waiting time is {wait}. Rather be called back, or get a link by text message? "
        "Press 1.",
        "nl": "Bedankt voor het wachten. U bent nu nummer {position} in de rij; de "
        "verwachte wachttijd is {wait}. Liever teruggebeld worden, of een link per sms? "
        "Druk op 1.",
    },
    # The caller pressed 1 in the queue ([ivr-queue-exit] back into the app).
    "queue_left": {
        "en": "You have left the queue.",
        "nl": "U heeft de wachtrij verlaten.",
    },
    "queue_back": {
        "en": "I'm sorry, I have no link for this question. I'll put you back in the queue.",
        "nl": "Sorry, voor deze vraag heb ik geen link. Ik zet u weer in de wachtrij.",
    },
    "your_question": {
        "en": "your question",
        "nl": "uw vraag",
    },
    "no_agents": {
        "en": "At the moment none of our colleagues for {label} is available.",
        "nl": "Op dit moment is er geen collega voor {label} beschikbaar.",
    },
    "offer_chat": {
        "en": "I can send you a link to our live chat instead.",
        "nl": "Ik kan u in plaats daarvan een link naar onze live chat sturen.",
    },
    "offer_self_service": {
        "en": "You can also arrange this yourself online; I will send you a link.",
        "nl": "U kunt dit ook zelf online regelen; ik stuur u een link.",
    },
    "long_wait_offer": {
        "en": "The expected waiting time is {wait}. Would you rather get a link by text "
        "message? Say yes or press 1. To keep waiting, say no or press 2.",
        "nl": "De verwachte wachttijd is {wait}. Wilt u liever een link per sms? "
        "Zeg ja of toets 1. Om te blijven wachten, zeg nee of toets 2.",
    },
    # Callbacks in time slots (ivr.domain.flow.callback).
    "callback_offer": {
        "en": "We can also call you back at a time that suits you. Would you like that? "
        "Say yes or press 1. Otherwise say no or press 2.",
        "nl": "We kunnen u ook terugbellen op een tijd die u uitkomt. Wilt u dat? "
        "Zeg ja of toets 1. Anders zeg nee of toets 2.",
    },
    "callback_offer_wait": {
        "en": "The expected waiting time is {wait}. Shall we call you back instead, at a "
        "time that suits you? Say yes or press 1. To keep waiting, say no or press 2.",
        "nl": "De verwachte wachttijd is {wait}. Zullen we u in plaats daarvan terugbellen, "
        "op een tijd die u uitkomt? Zeg ja of toets 1. Om te blijven wachten, zeg nee of "
        "toets 2.",
    },
    "callback_slots": {
        "en": "We can call you {choices}. Press the number of the time you want, or say it.",
        "nl": "We kunnen u bellen {choices}. Toets het nummer van de tijd die u wilt, of zeg "
        "het.",
    },
    "callback_choice": {
        "en": "press {n} for {when}",
        "nl": "toets {n} voor {when}",
    },
    "callback_not_chosen": {
        "en": "Sorry, I did not catch which time you want.",
        "nl": "Sorry, ik heb niet verstaan welke tijd u wilt.",
    },
    "callback_slot_gone": {
        "en": "I'm sorry, that time has just been taken.",
        "nl": "Sorry, die tijd is net vergeven.",
    },
    "callback_booked": {
        "en": "Thank you. We will call you back {when}. {sms}Goodbye.",
        "nl": "Dank u wel. We bellen u {when} terug. {sms}Tot ziens.",
    },
    "callback_sms_note": {
        "en": "You will get a text message with a link to cancel or move it. ",
        "nl": "U krijgt een sms met een link om het af te zeggen of te verzetten. ",
    },
    "slot_today": {"en": "today at {time}", "nl": "vandaag om {time} uur"},
    "slot_tomorrow": {"en": "tomorrow at {time}", "nl": "morgen om {time} uur"},
    "slot_day": {"en": "on {date} at {time}", "nl": "op {date} om {time} uur"},
    "try_later": {
        "en": "Please try again later, or visit our website. We are sorry for the inconvenience.",
        "nl": "Probeer het later nog eens, of kijk op onze website. Excuses voor het ongemak.",
    },
    "system_problem": {
        "en": "I'm sorry, something went wrong on our side. I'm connecting you with a colleague.",
        "nl": "Excuses, er ging bij ons iets mis. Ik verbind u door met een collega.",
    },
    "closed": {
        "en": "Our colleagues are not available right now. {next_open}",
        "nl": "Onze collega's zijn op dit moment niet bereikbaar. {next_open}",
    },
    # The after-call survey (only for surveyed skills; the caller opts in by staying on
    # the line when the agent hangs up).
    "csat_notice": {
        "en": "After your call, stay on the line to rate our help. It takes a few seconds.",
        "nl": "Blijf na het gesprek aan de lijn om onze hulp te beoordelen. Het duurt maar "
              "een paar seconden.",
    },
    "csat_question": {
        "en": "Thank you for staying on the line. On a scale of 1 to 5, how satisfied are "
              "you with the help you got? Press or say a number from 1 to 5.",
        "nl": "Bedankt dat u aan de lijn blijft. Hoe tevreden bent u over de hulp, op een "
              "schaal van 1 tot 5? Toets of zeg een cijfer van 1 tot 5.",
    },
    "csat_retry": {
        "en": "Sorry, please press a number from 1 to 5.",
        "nl": "Sorry, toets een cijfer van 1 tot 5.",
    },
    "csat_follow_up": {
        "en": "Thank you. In a few words, what could we do better? Speak after the tone, "
              "then press hash or hang up.",
        "nl": "Dank u. Wat kunnen we in een paar woorden beter doen? Spreek na de toon en "
              "toets dan een hekje of hang op.",
    },
    "csat_thanks": {
        "en": "Thank you for your feedback. Goodbye.",
        "nl": "Bedankt voor uw mening. Tot ziens.",
    },
    "csat_score_words": {
        "en": "one|two|three|four|five",
        "nl": "een|twee|drie|vier|vijf",
    },
    # Online, then by phone (POST /api/contacts): the question asked on the web or in chat.
    "online_context": {
        "en": "You were asking about {label}; I'm putting you through.",
        "nl": "U had een vraag over {label}; ik verbind u door.",
    },
    "online_code_ask": {
        "en": "Please key in the six digit code from our website or chat.",
        "nl": "Toets de zescijferige code van onze website of chat in.",
    },
    "online_code_wrong": {
        "en": "Sorry, that code is not valid or has expired. Please try again.",
        "nl": "Sorry, die code is niet geldig of verlopen. Probeer het nog eens.",
    },
    "online_code_give_up": {
        "en": "Sorry, that code is not valid or has expired. No problem, I'll help you here.",
        "nl": "Sorry, die code is niet geldig of verlopen. Geen probleem, ik help u hier.",
    },
    "goodbye": {
        "en": "Thank you for calling. Goodbye.",
        "nl": "Bedankt voor uw telefoontje. Tot ziens.",
    },
    # Fragments: parts of the sentences above (rendered, never recorded alone).
    "eta_phrase": {
        "en": " and should arrive on {date}",
        "nl": " en wordt naar verwachting {date} bezorgd",
    },
    "today_open": {
        "en": "We are open now, until {closes}.",
        "nl": "We zijn nu open, tot {closes} uur.",
    },
    "today_closed": {
        "en": "We are closed now; we open again {date} at {time}.",
        "nl": "We zijn nu gesloten; we zijn weer open op {date} om {time} uur.",
    },
    "next_open": {
        "en": "We are available again {date} from {time}.",
        "nl": "We zijn weer bereikbaar op {date} vanaf {time} uur.",
    },
    # Text messages (SMS / WhatsApp), not speech.
    "sms_self_service": {
        "en": "Kanaal: arrange {label} yourself here: {url} (link valid for 24 hours)",
        "nl": "Kanaal: regel {label} direct zelf via {url} (link 24 uur geldig)",
    },
    "sms_chat": {
        "en": "Kanaal: continue your question about {label} in our live chat: {url}",
        "nl": "Kanaal: zet uw vraag over {label} voort in onze live chat: {url}",
    },
    "sms_callback": {
        "en": "Kanaal: we will call you back {when} about {label}. Cancel or move it: {url}",
        "nl": "Kanaal: we bellen u {when} terug over {label}. Afzeggen of verzetten: {url}",
    },
    "sms_callback_missed": {
        "en": "Kanaal: we tried to call you back about {label} but could not reach you. "
        "Please call us again, or book a new time: {url}",
        "nl": "Kanaal: we hebben geprobeerd u terug te bellen over {label}, maar kregen u "
        "niet te pakken. Bel ons opnieuw, of kies een nieuwe tijd: {url}",
    },
    # Spoken slot choices: word:slot number.
    "slot_words": {
        "en": "first:1|one:1|earliest:1|second:2|two:2|middle:2|third:3|three:3|last:3",
        "nl": "eerste:1|een:1|één:1|tweede:2|twee:2|middelste:2|derde:3|drie:3|laatste:3",
    },
    "yes_words": {
        "en": "yes|yeah|yep|sure|correct|right|please|it did|that's right|ok|okay",
        "nl": "ja|jawel|klopt|zeker|graag|goed|prima|oké|ok|dat klopt",
    },
    "no_words": {
        "en": "no|nope|not really|didn't|did not|wrong|nah",
        "nl": "nee|neen|niet|klopt niet|helaas niet|nope",
    },
    # Said instead of pressing the key of the language offer: words that choose this
    # language (in either language, and as an English-only recogniser spells them).
    "language_words": {
        "en": "english|engels|in english",
        "nl": "nederlands|dutch|netherlands|nederland|hollands|in het nederlands",
    },
    "agent_words": {
        "en": "agent|person|human|colleague|operator|representative|someone",
        "nl": "medewerker|mens|persoon|collega|iemand|telefonist",
    },
}

STATUS_WORDS: dict[str, dict[str, str]] = {
    "processing": {"en": "being prepared", "nl": "in behandeling"},
    "in_transit": {"en": "on its way", "nl": "onderweg"},
    "delivered": {"en": "delivered", "nl": "bezorgd"},
    "cancelled": {"en": "cancelled", "nl": "geannuleerd"},
}

WEEKDAYS: dict[str, tuple[str, ...]] = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
}

MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"),
}


def render(key: str, language: Language, **params: object) -> Prompt:
    """Render a catalogue prompt; raises KeyError for an unknown key (a programming error)."""
    texts = PROMPTS[key]
    template = texts.get(language) or texts["en"]
    str_params = {k: str(v) for k, v in params.items()}
    return Prompt(
        key=key,
        text=template.format(**str_params),
        language=language,
        params=tuple(sorted(str_params.items())),
    )


def words(key: str, language: Language) -> tuple[str, ...]:
    """Word lists (yes/no/agent) used to interpret short answers."""
    return tuple(PROMPTS[key][language].split("|"))


def static_keys() -> list[str]:
    """Prompts that can be pre-recorded (no run-time parameters, not word lists)."""
    return [
        k for k, v in PROMPTS.items()
        if "{" not in v["en"] and not k.endswith("_words")
    ]


# How a message channel is named when spoken ("... a message by WhatsApp"); any other
# channel is sent as SMS.
CHANNEL_WORDS = {"sms": "SMS", "whatsapp": "WhatsApp"}


def channel_word(channel: str) -> str:
    return CHANNEL_WORDS.get(channel, "SMS")


def keypad_options(menu: Sequence[IntentSpec], language: Language) -> str:
    """The keypad menu's options ("For order status, press 1. ...") in menu order."""
    return " ".join(render("keypad_option", language, label=s.label_for(language),
                           digit=s.keypad).text for s in menu)
