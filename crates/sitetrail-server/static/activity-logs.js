// The dashboard's one script. The pages work without it; with it, times read in the
// viewer's time zone, filter URLs stay short, and the Activity Logs (and the short recent
// tables of the Overview, Staging and Backups pages) follow the site's live stream: a
// running activity updates in place when it ends, and a new one appears at the top. Data
// only ever reaches the page through textContent.
(function () {
  'use strict';

  // The badge symbols the server renders (activity_logs.rs, status_icon).
  var ICONS = { in_progress: '\u25d4', completed: '\u2713', failed: '\u2715' };

  var timeFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'
  });

  function localise(el) {
    var at = new Date(el.getAttribute('datetime'));
    if (!isNaN(at.getTime())) el.textContent = timeFormat.format(at);
  }

  // "2026-11-25 09:30:07 UTC", as the server writes the title.
  function utcTitle(iso) {
    return iso.slice(0, 10) + ' ' + iso.slice(11, 19) + ' UTC';
  }

  // The same words as the server's time::duration.
  function duration(ms) {
    var s = Math.floor(Math.max(0, ms) / 1000);
    if (s === 0) return 'under 1 s';
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  // "Running for 42 s", from the activity's start, ticking each second.
  function tickRunning(el) {
    var since = Date.parse(el.getAttribute('data-since'));
    if (!isNaN(since)) el.textContent = 'Running for ' + duration(Date.now() - since);
  }
  function tickAll() {
    document.querySelectorAll('tr[data-status="in_progress"] .running-for[data-since]').forEach(tickRunning);
  }
  tickAll();
  setInterval(tickAll, 1000);

  // "Copying the files: 1,234 of 2,465", as the engine reports it.
  function progressText(p) {
    var phase = p.phase ? p.phase.charAt(0).toUpperCase() + p.phase.slice(1) : 'Working';
    if (p.total > 0) return phase + ': ' + p.done.toLocaleString() + ' of ' + p.total.toLocaleString();
    if (p.done > 0) return phase + ': ' + p.done.toLocaleString() + ' done';
    return phase;
  }

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function timeElement(iso) {
    var t = document.createElement('time');
    t.setAttribute('datetime', iso);
    t.title = utcTitle(iso);
    t.textContent = utcTitle(iso);
    localise(t);
    return t;
  }

  document.querySelectorAll('time[datetime]').forEach(localise);
  // Choices that start with a time (backups) read it as the tables do.
  document.querySelectorAll('option[data-datetime]').forEach(function (o) {
    var at = new Date(o.getAttribute('data-datetime'));
    if (!isNaN(at.getTime())) o.textContent = timeFormat.format(at) + (o.getAttribute('data-rest') || '');
  });
  var zoneNote = document.getElementById('tz-note');
  if (zoneNote) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'your time zone';
    zoneNote.textContent = 'Times are in your time zone (' + zone + '). Hover over a time to see it in UTC.';
  }

  // Filters: count the days in the viewer's time zone, and leave empty fields out of the URL.
  var form = document.querySelector('form.filters');
  if (form) {
    form.addEventListener('submit', function () {
      var from = form.elements.namedItem('from');
      var to = form.elements.namedItem('to');
      var tz = form.elements.namedItem('tz');
      if (tz) {
        tz.value = (from && from.value) || (to && to.value)
          ? String(-new Date().getTimezoneOffset()) : '';
      }
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && !el.value) el.disabled = true;
      });
    });
    window.addEventListener('pageshow', function () {
      Array.prototype.forEach.call(form.elements, function (el) { el.disabled = false; });
    });
  }

  // Action forms are sent once: their buttons are disabled as soon as one is sent (the server
  // also knows a form sent twice by its one-time token, for browsers without this script).
  var actionForms = document.querySelectorAll('form.action-form');
  Array.prototype.forEach.call(actionForms, function (f) {
    f.addEventListener('submit', function (e) {
      if (f.getAttribute('data-sending')) { e.preventDefault(); return; }
      f.setAttribute('data-sending', 'true');
      // Buttons carry no name, so a disabled one takes nothing away from what is sent.
      f.querySelectorAll('button[type="submit"]').forEach(function (b) { b.disabled = true; });
    });
  });
  // A page the browser brings back from its history is a page to use again.
  window.addEventListener('pageshow', function (e) {
    if (!e.persisted) return;
    Array.prototype.forEach.call(actionForms, function (f) {
      f.removeAttribute('data-sending');
      f.querySelectorAll('button[type="submit"]').forEach(function (b) { b.disabled = false; });
    });
  });

  // While an operation runs on the site, its actions wait: they are enabled again, live, when
  // it ends. `running` holds the ids of the site's running operations this page knows of.
  var whenIdle = document.querySelectorAll('[data-when-idle]');
  var running = {};
  function updateActions() {
    var busy = Object.keys(running).length > 0;
    Array.prototype.forEach.call(whenIdle, function (el) {
      if (el.tagName === 'A') {
        el.classList.toggle('disabled', busy);
        if (busy) el.setAttribute('aria-disabled', 'true');
        else el.removeAttribute('aria-disabled');
      } else if (!(el.form && el.form.getAttribute('data-sending'))) {
        el.disabled = busy;
      }
    });
  }
  function track(a) {
    if (a.status === 'in_progress') running[a.id] = true;
    else delete running[a.id];
    updateActions();
  }

  var log = document.getElementById('activity-log');
  var tbody = document.getElementById('activity-rows');
  var rowTemplate = document.getElementById('row-template');
  if (!log || !tbody || !rowTemplate || !window.EventSource || !log.dataset.stream) return;

  Array.prototype.forEach.call(tbody.querySelectorAll('tr[data-status="in_progress"]'), function (tr) {
    running[tr.getAttribute('data-id')] = true;
  });
  (log.getAttribute('data-running') || '').split(' ').forEach(function (id) {
    if (id) running[id] = true;
  });
  updateActions();

  var filter = log.dataset;
  var firstPage = filter.firstPage === 'true';
  var hasOlder = filter.hasOlder === 'true';
  // The recent tables keep their length; the full log grows.
  var maxRows = parseInt(filter.maxRows || '0', 10);
  var runningHint = document.getElementById('running-hint');
  var flash = document.getElementById('flash');
  var liveStatus = document.getElementById('live-status');
  var announcer = document.getElementById('live-announce');
  var notice = document.getElementById('new-activity');
  var empty = document.getElementById('log-empty');

  function say(text, paused) {
    if (!liveStatus) return;
    liveStatus.textContent = text;
    liveStatus.classList.toggle('paused', !!paused);
  }

  function announce(text) {
    if (announcer) announcer.textContent = text;
  }

  // Whether an activity belongs on this page's filters (free text is left to the server).
  function matches(a) {
    if (filter.filterActivity && a.activity !== filter.filterActivity) return false;
    if (filter.filterStatus && a.status !== filter.filterStatus) return false;
    if (filter.filterService && a.service !== filter.filterService) return false;
    if (filter.filterUser &&
        a.user.label.toLowerCase() !== filter.filterUser.trim().toLowerCase()) return false;
    var created = Date.parse(a.created_at);
    if (filter.filterFrom && created < Date.parse(filter.filterFrom)) return false;
    if (filter.filterTo && created >= Date.parse(filter.filterTo)) return false;
    return true;
  }

  function buildRow(a) {
    var row = rowTemplate.content.firstElementChild.cloneNode(true);
    var cell = function (selector) { return row.querySelector(selector); };
    row.id = 'activity-' + a.id;
    row.setAttribute('data-id', a.id);
    row.setAttribute('data-status', a.status);
    row.setAttribute('data-created', a.created_at);
    cell('.c-created').appendChild(timeElement(a.created_at));
    cell('.user').textContent = a.user.label;
    if (a.user.kind === 'support' && a.user.email) {
      var marker = element('span', 'marker', 'Support');
      marker.title = "Support acted on the client's behalf";
      marker.appendChild(element('span', 'visually-hidden', " acting on the client's behalf"));
      cell('.c-user').appendChild(document.createTextNode(' '));
      cell('.c-user').appendChild(marker);
    }
    cell('.c-service').textContent = a.service_label;
    cell('.c-activity').textContent = a.activity_label;
    // A daily backup the system skipped while another operation ran: calm, it is retried
    // (the same rule as the server's words::skipped_by_schedule).
    var skipped = a.status === 'failed' && a.user.kind === 'system' &&
      a.activity === 'create_backup' && a.details && a.details.blocked_by;
    cell('.badge').classList.add('badge-' + (skipped ? 'skipped' : a.status));
    if (skipped) cell('.badge').title = 'Logged as failed: the system takes this backup again by itself';
    cell('.badge-icon').textContent = skipped ? '\u21bb' : (ICONS[a.status] || '');
    cell('.badge-label').textContent = skipped ? 'Skipped, will retry' : a.status_label;
    if (a.status === 'in_progress') {
      cell('.running-for').setAttribute('data-since', a.created_at);
      tickRunning(cell('.running-for'));
    }
    cell('.description').textContent = a.description;
    if (a.error) {
      var details = element('details', skipped ? 'error calm' : 'error');
      details.appendChild(element('summary', '', skipped ? 'Why' : 'Show error'));
      details.appendChild(element('p', '', a.error));
      cell('.c-description').appendChild(details);
    }
    // A preview's report (and the new one a stopped push carries) has its page: as _row.html.
    if (a.activity === 'preview_push' || (a.activity === 'push_staging_to_live' && a.details && a.details.preview)) {
      var report = element('a', 'report-link', 'See the report');
      report.href = '/sites/' + encodeURIComponent(a.site_id) + '/staging/previews/' + encodeURIComponent(a.id);
      cell('.c-description').appendChild(document.createTextNode(' '));
      cell('.c-description').appendChild(report);
    }
    var done = cell('.c-completed');
    if (a.completed_at) {
      done.appendChild(timeElement(a.completed_at));
      if (a.duration_ms !== null && a.duration_ms !== undefined) {
        done.appendChild(document.createTextNode(' '));
        done.appendChild(element('span', 'duration', 'took ' + duration(a.duration_ms)));
      }
    } else {
      done.appendChild(element('span', 'pending', 'Not finished'));
    }
    row.classList.add('fresh');
    return row;
  }

  function reveal() {
    log.hidden = false;
    if (empty) empty.hidden = true;
  }

  function trim() {
    while (maxRows > 0 && tbody.rows.length > maxRows) {
      tbody.deleteRow(tbody.rows.length - 1);
      hasOlder = true;
    }
  }

  // "An operation is running" holds only while a listed activity runs.
  function updateRunningHint() {
    if (!runningHint) return;
    runningHint.hidden = !tbody.querySelector('tr[data-status="in_progress"]') &&
      Object.keys(running).length === 0;
    var hint = document.getElementById('running-progress');
    if (hint && runningHint.hidden) hint.textContent = '';
  }

  // The message about the operation a form just started follows it to its end.
  function follow(a) {
    if (!flash || flash.getAttribute('data-activity') !== a.id || a.status === 'in_progress') return;
    var title = flash.querySelector('.flash-title');
    var message = flash.querySelector('.flash-message');
    var ended = a.status === 'completed' ? 'completed' : 'failed';
    flash.className = 'flash flash-' + ended;
    if (title) title.textContent = flash.getAttribute('data-label') + ' ' + ended;
    if (message) message.textContent = (ended === 'failed' && a.error) ? a.error : a.description;
    var progress = flash.querySelector('.flash-progress');
    if (progress) progress.textContent = '';
  }

  function showNotice() {
    if (notice) notice.hidden = false;
  }

  // Puts a new activity where it belongs in the newest-first order, if on this page.
  function insert(a) {
    var at = Date.parse(a.created_at);
    var rows = tbody.rows;
    for (var i = 0; i < rows.length; i++) {
      if (Date.parse(rows[i].getAttribute('data-created')) < at) {
        tbody.insertBefore(buildRow(a), rows[i]);
        return true;
      }
    }
    if (!hasOlder) {
      tbody.appendChild(buildRow(a));
      return true;
    }
    return false;
  }

  function receive(event) {
    var a;
    try { a = JSON.parse(event.data); } catch (e) { return; }
    if (a.service === 'staging' || a.service === 'backups') {
      track(a);
      updateRunningHint();
    }
    follow(a);
    var existing = document.getElementById('activity-' + a.id);
    if (existing) {
      existing.replaceWith(buildRow(a));
      updateRunningHint();
      announce(a.activity_label + ': ' + a.status_label);
      return;
    }
    if (!matches(a)) return;
    if (!firstPage || filter.filterQ) {
      showNotice();
      return;
    }
    if (insert(a)) {
      trim();
      reveal();
      updateRunningHint();
      announce('New activity: ' + a.activity_label + ', ' + a.status_label);
    }
  }

  var stream = new EventSource(log.dataset.stream);
  // An operation a form started may have ended before the stream opened: ask once.
  function catchUp() {
    if (!flash || !flash.classList.contains('flash-started') || !window.fetch) return;
    var id = flash.getAttribute('data-activity');
    fetch('/api/v1/activities/' + encodeURIComponent(id), {
      credentials: 'same-origin', headers: { accept: 'application/json' }
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) { if (a) receive({ data: JSON.stringify(a) }); })
      .catch(function () {});
  }

  stream.addEventListener('open', function () {
    say('Live updates on');
    // Live updates run: nobody needs to refresh the page to see an operation end.
    document.querySelectorAll('.without-live').forEach(function (el) { el.hidden = true; });
    catchUp();
  });
  stream.addEventListener('error', function () {
    if (stream.readyState === EventSource.CLOSED) {
      say('Live updates stopped. Reload the page to see new activity.', true);
    } else {
      say('Live updates paused; reconnecting\u2026', true);
    }
  });
  stream.addEventListener('activity.progress', function (event) {
    var p;
    try { p = JSON.parse(event.data); } catch (e) { return; }
    var text = progressText(p);
    var row = document.getElementById('activity-' + p.id);
    if (row && row.getAttribute('data-status') === 'in_progress') {
      var cell = row.querySelector('.progress');
      if (cell) cell.textContent = text;
    }
    if (flash && flash.getAttribute('data-activity') === p.id && flash.classList.contains('flash-started')) {
      var line = flash.querySelector('.flash-progress');
      if (line) line.textContent = text;
    }
    var hint = document.getElementById('running-progress');
    if (hint && runningHint && !runningHint.hidden) hint.textContent = '. ' + text;
  });
  stream.addEventListener('activity.created', receive);
  stream.addEventListener('activity.ended', receive);
})();
