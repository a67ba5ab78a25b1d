// roles.js: what the page tells a person they may do, from the actions
// their token is granted on the project (GET /v1/projects, see
// forms.permissions). Only buttons that are shown are promised. No DOM.

/** join lists words as a sentence does: "a", "a and b", "a, b, and c" (the last comma keeps long items apart). */
export function join(words) {
  if (words.length <= 1) return words.join('');
  if (words.length === 2) return `${words[0]} and ${words[1]}`;
  return `${words.slice(0, -1).join(', ')}, and ${words[words.length - 1]}`;
}

/**
 * roleSummary is the sidebar's sentence about the project: what this token
 * may do there, and that values are never shown. copyTargets: the projects
 * a copy may go to (forms.copyTargets).
 */
export function roleSummary(perms, { project, copyTargets = [] } = {}) {
  const can = [];
  if (perms.list) can.push('list secrets and their versions');
  if (perms.create) can.push('add secrets');
  if (perms.update) can.push('change them (replace values, set or remove a key, edit labels, roll back)');
  if (perms.delete) can.push('delete them');
  if (perms.copyFrom && copyTargets.some((n) => n !== project)) can.push('copy them to another project');
  else if (perms.copyFrom && copyTargets.includes(project)) can.push('copy them under another name');
  const where = `In “${project}”`;
  if (can.length === 0) return `${where} this token may do nothing the web UI offers.`;
  let s = `${where} you may ${join(can)}.`;
  if (!perms.create && !perms.update && !perms.delete) {
    s += ' You cannot add or change secrets here: ask someone whose role may.';
  }
  return `${s} Values are never shown in this page.`;
}

/** detailsHint is the sentence above a secret's actions; canCopy: its Copy button is shown. */
export function detailsHint(perms, { canCopy = false } = {}) {
  const ref = '“Copy reference” copies a key’s sg:// reference, which secretgate run and inject resolve.';
  if (perms.update) {
    return `Values are write-only: you may replace them, set or remove one key, or roll back to an earlier version, but never see them. ${ref}`;
  }
  const copy = canCopy ? ', and copy the secret inside the gateway' : '';
  return `Values are never shown here, and your role in this project cannot change them: you may look at the keys and versions${copy}. ${ref}`;
}

/**
 * emptyState says why the list is empty and how to add a secret: with
 * "+ Add Secret" when the role may create, and from a terminal.
 * Answers {title, text, command}.
 */
export function emptyState(perms, { project, prefix = '' } = {}) {
  const command = `secretgate secret create NAME key=value --project ${project}`;
  if (prefix) {
    return {
      title: `No secret name in “${project}” starts with “${prefix}”.`,
      text: 'Clear the filter to see every secret.',
      command: '',
    };
  }
  if (perms.create) {
    return {
      title: `No secrets in “${project}” yet.`,
      text: 'Add one with “+ Add Secret” above, or from a terminal:',
      command,
    };
  }
  return {
    title: `No secrets in “${project}” to show.`,
    text: 'Your role here cannot add secrets; someone whose role may create them can run:',
    command,
  };
}
