"""The PostgreSQL store's schema: versioned migrations, applied in order at open (migrations.apply).

A migration is never edited once released: a change is a new version appended to MIGRATIONS.
Times that only this fracta compares (message ids, read stamps, queued_ns) are nanoseconds from
the clients' clocks, as in the files backend; leases that several control planes compare use
the database's clock (clock_timestamp()), the one clock they share.
Names and ids sort byte by byte (COLLATE "C"), as Python and the files backend sort them,
whatever the database's locale.
"""

from __future__ import annotations

from .migrations import Migration, latest

# Version 1: agents, their inboxes, messages, retired read holders, missions, events, tokens, meta.
_V1 = """
CREATE TABLE agents (
    name text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL,              -- records.Agent.to_dict()
    created_at text COLLATE "C" NOT NULL, -- ISO 8601 UTC as in the record: sorts by creation
    token_hash text NOT NULL UNIQUE     -- sha256 hex of the agent's token, never the token
);
CREATE INDEX agents_by_creation ON agents (created_at, name);

-- What changes without holding the agent (AgentStore.holding locks its agents row FOR NO KEY
-- UPDATE): activity and supervision are updated here, never blocked by a hold.
CREATE TABLE agent_state (
    name text COLLATE "C" PRIMARY KEY REFERENCES agents (name) ON DELETE CASCADE,
    last_activity double precision,     -- epoch seconds (AgentStore.touch)
    supervisor text,                    -- the control plane supervising it (Store.supervise)
    supervised_until timestamptz        -- its lease, on the database's clock
);

-- One row per inbox: each agent's (removed with it) and the chessmaster's (no agent row).
-- Reads of one inbox take turns on this row (SELECT ... FOR NO KEY UPDATE).
CREATE TABLE inboxes (
    name text COLLATE "C" PRIMARY KEY,
    agent text COLLATE "C" UNIQUE REFERENCES agents (name) ON DELETE CASCADE
);
INSERT INTO inboxes (name) VALUES ('chessmaster');

CREATE TABLE messages (
    recipient text COLLATE "C" NOT NULL REFERENCES inboxes (name) ON DELETE CASCADE,
    id text COLLATE "C" NOT NULL,       -- made by the core: sorts by send time
    sent_ns bigint NOT NULL,            -- the send time the id starts with
    sender text NOT NULL,
    sent_at text NOT NULL,
    subject text,
    reply_to text,
    body text NOT NULL,
    dedup_key text,
    state text NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'pending', 'read')),
    holder text,                        -- pending: the read holder it was handed to
    held_ns bigint,                     -- pending: when it was handed out
    PRIMARY KEY (recipient, id),
    CHECK ((state = 'pending') = (holder IS NOT NULL AND held_ns IS NOT NULL))
);
CREATE UNIQUE INDEX messages_dedup ON messages (recipient, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX messages_new ON messages (recipient, id) WHERE state = 'new';
CREATE INDEX messages_pending ON messages (recipient, held_ns) WHERE state = 'pending';

-- Holders whose reads were acknowledged (MailStore.read's IdempotencyConflict), the last ~2,000
-- per inbox (mail.py trims), like the files backend's inbox/acked.
CREATE TABLE retired_holders (
    seq bigserial PRIMARY KEY,
    inbox text COLLATE "C" NOT NULL REFERENCES inboxes (name) ON DELETE CASCADE,
    holder text NOT NULL,
    UNIQUE (inbox, holder)
);
CREATE INDEX retired_by_inbox ON retired_holders (inbox, seq);

CREATE TABLE missions (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    runtime text NOT NULL,
    prompt text,
    args jsonb NOT NULL DEFAULT '[]',
    queued_ns bigint NOT NULL,
    claimed_by text,
    lease_until timestamptz,
    claim text                          -- the claim call that took it: a retried call finds its own
);
CREATE INDEX missions_fifo ON missions (queued_ns, id);
CREATE INDEX missions_by_owner ON missions (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX missions_by_claim ON missions (claim) WHERE claim IS NOT NULL;  -- a retried claim finds its own
CREATE INDEX missions_by_name ON missions (name);

CREATE TABLE events (
    id bigserial PRIMARY KEY,
    data jsonb NOT NULL
);

-- The hashes of the chessmaster tokens of every machine that opened this store.
CREATE TABLE chessmaster_tokens (
    hash text PRIMARY KEY
);

CREATE TABLE meta (
    key text PRIMARY KEY,
    value jsonb NOT NULL
);
"""

# Version 2: when a message's reading was confirmed (fracta inbox --sent shows it).
_V2 = "ALTER TABLE messages ADD COLUMN read_ns bigint;"

# Version 3: following messages without a scan: a sender's messages (fracta inbox --sent), unread
# ones flagged once (alerted_ns), and an agent's events of a kind (the wake story of a message).
_V3 = """
CREATE INDEX messages_by_sender ON messages (sender, id);
ALTER TABLE messages ADD COLUMN alerted_ns bigint;
CREATE INDEX events_by_agent ON events ((data->>'agent'), (data->>'event'), id);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "agents, inboxes, messages, retired holders, missions, events, tokens, meta", _V1),
    Migration(2, "messages: read_ns", _V2),
    Migration(3, "messages by sender, alerted_ns; events by agent and kind", _V3),
)
VERSION = latest(MIGRATIONS)  # the newest schema this fracta knows (fracta doctor shows it)
