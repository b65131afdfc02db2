"""The schema as `create_all` made it before there were migrations, and the search index.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

A database made by an older Sluice (tables, no alembic_version) whose schema matches this
revision is stamped with it by init_schema instead of being created again.

The search index is written out here, not taken from tables_space: a revision must keep
creating what it created the day it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SEARCH_TABLE = "space_search"

SQLITE_SEARCH = (
    f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5("
    "subject, body, sender, names, post_id UNINDEXED, comment_id UNINDEXED, "
    "tokenize = 'unicode61 remove_diacritics 2')",
)
POSTGRES_SEARCH = (
    f"CREATE TABLE {SEARCH_TABLE} ("
    "id BIGSERIAL PRIMARY KEY, post_id BIGINT NOT NULL REFERENCES space_post(id), "
    "comment_id BIGINT NOT NULL DEFAULT 0, subject TEXT NOT NULL DEFAULT '', "
    "body TEXT NOT NULL DEFAULT '', sender TEXT NOT NULL DEFAULT '', "
    "names TEXT NOT NULL DEFAULT '', "
    "document tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', subject), 'A') || "
    "setweight(to_tsvector('simple', names), 'B') || "
    "setweight(to_tsvector('simple', sender), 'B') || "
    "setweight(to_tsvector('simple', "
    "regexp_replace(names || ' ' || sender, '[^[:alnum:]]+', ' ', 'g')), 'B') || "
    "setweight(to_tsvector('simple', body), 'C')) STORED)",
    f"CREATE INDEX ix_{SEARCH_TABLE}_document ON {SEARCH_TABLE} USING GIN (document)",
    f"CREATE INDEX ix_{SEARCH_TABLE}_post ON {SEARCH_TABLE} (post_id)",
)


def upgrade() -> None:
    op.create_table("analysis_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("rules", sa.String(length=1024), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("diverted_deliveries", sa.Integer(), nullable=False),
        sa.Column("reduction_percent", sa.Float(), nullable=False),
        sa.Column("reading_seconds_saved", sa.Float(), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_analysis_run_finished_at", "analysis_run", ["finished_at"])

    op.create_table("api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=False),
        sa.Column("user_email", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256")
    )
    op.create_index("ix_api_token_user_email", "api_token", ["user_email"])

    op.create_table("app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email")
    )
    op.create_table("blob",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256")
    )
    op.create_table("board_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "key")
    )
    op.create_table("correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("previous_category", sa.String(length=32), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("corrected_by", sa.String(length=512), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_correction_created_at", "correction", ["created_at"])
    op.create_index("ix_correction_fingerprint", "correction", ["fingerprint"])
    op.create_index("ix_correction_message_id", "correction", ["message_id"])

    op.create_table("digest_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=512), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user", "fingerprint")
    )
    op.create_index("ix_digest_item_created_at", "digest_item", ["created_at"])
    op.create_index("ix_digest_item_sent_at", "digest_item", ["sent_at"])
    op.create_index("ix_digest_item_user", "digest_item", ["user"])

    op.create_table("ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=512), nullable=False),
        sa.Column("reply", sa.String(length=1024), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint", "recipient")
    )
    op.create_index("ix_ledger_at", "ledger", ["at"])
    op.create_index("ix_ledger_fingerprint", "ledger", ["fingerprint"])

    op.create_table("login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=512), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_login_attempt_at", "login_attempt", ["at"])
    op.create_index("ix_login_attempt_client", "login_attempt", ["client"])
    op.create_index("ix_login_attempt_email", "login_attempt", ["email"])

    op.create_table("message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("mail_from", sa.String(length=512), nullable=False),
        sa.Column("header_from", sa.String(length=512), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("rcpt_count", sa.Integer(), nullable=False),
        sa.Column("to_count", sa.Integer(), nullable=False),
        sa.Column("cc_count", sa.Integer(), nullable=False),
        sa.Column("attachment_count", sa.Integer(), nullable=False),
        sa.Column("attachment_bytes", sa.Integer(), nullable=False),
        sa.Column("in_reply_to", sa.String(length=998), nullable=False),
        sa.Column("references", sa.String(), nullable=False),
        sa.Column("thread_subject", sa.String(), nullable=False),
        sa.Column("reply_depth", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("reasons", sa.String(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("defects", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_message_category", "message", ["category"])
    op.create_index("ix_message_fingerprint", "message", ["fingerprint"], unique=True)
    op.create_index("ix_message_message_id", "message", ["message_id"])
    op.create_index("ix_message_received_at", "message", ["received_at"])
    op.create_index("ix_message_thread_subject", "message", ["thread_subject"])

    op.create_table("outbox_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("post_json", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("mail_from", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("link", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key")
    )
    op.create_index("ix_outbox_job_destination", "outbox_job", ["destination"])
    op.create_index("ix_outbox_job_fingerprint", "outbox_job", ["fingerprint"])
    op.create_index("ix_outbox_job_next_attempt_at", "outbox_job", ["next_attempt_at"])
    op.create_index("ix_outbox_job_state", "outbox_job", ["state"])

    op.create_table("policy_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("position")
    )
    op.create_table("rules_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=512), nullable=False),
        sa.Column("owner", sa.String(length=512), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("rule_count", sa.Integer(), nullable=False),
        sa.Column("rules", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_rules_change_at", "rules_change", ["at"])
    op.create_index("ix_rules_change_owner", "rules_change", ["owner"])

    op.create_table("sender_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sender", "destination")
    )
    op.create_table("space_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name")
    )
    op.create_table("space_post",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("sender_name", sa.String(length=512), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("attachments_json", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("thread_subject", sa.String(), nullable=False),
        sa.Column("in_reply_to", sa.String(length=998), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("comment_count", sa.Integer(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "fingerprint")
    )
    op.create_index("ix_space_post_channel_posted", "space_post", ["channel", "posted_at", "id"])
    op.create_index("ix_space_post_fingerprint", "space_post", ["fingerprint"])
    op.create_index("ix_space_post_id_channel_activity", "space_post",
                    ["id", "channel", "last_activity_at"])
    op.create_index("ix_space_post_message_id", "space_post", ["message_id"])
    op.create_index("ix_space_post_posted_at", "space_post", ["posted_at"])
    op.create_index("ix_space_post_thread_id", "space_post", ["thread_id"])
    op.create_index("ix_space_post_thread_subject", "space_post", ["thread_subject"])

    op.create_table("stored_rules",
        sa.Column("owner", sa.String(length=512), nullable=False),
        sa.Column("rule_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("owner")
    )
    op.create_table("user_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=512), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user", "position")
    )
    op.create_index("ix_user_rule_user", "user_rule", ["user"])

    op.create_table("watch_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=512), nullable=False),
        sa.Column("folder", sa.String(length=512), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("last_uid", sa.Integer(), nullable=False),
        sa.Column("pending_uid", sa.Integer(), nullable=False),
        sa.Column("watching_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account", "folder")
    )
    op.create_table("web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_email", sa.String(length=512), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("id_sha256")
    )
    op.create_index("ix_web_session_expires_at", "web_session", ["expires_at"])
    op.create_index("ix_web_session_user_email", "web_session", ["user_email"])

    op.create_table("analysis_category",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("diverted_deliveries", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["analysis_run.id"]),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_analysis_category_run_id", "analysis_category", ["run_id"])

    op.create_table("analysis_week",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(length=16), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("diverted_deliveries", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["analysis_run.id"]),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_analysis_week_run_id", "analysis_week", ["run_id"])

    op.create_table("board_calendar_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("uid", sa.String(length=512), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("tzid", sa.String(length=100), nullable=False),
        sa.Column("location", sa.String(length=1024), nullable=False),
        sa.Column("organizer", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rrule", sa.String(length=1024), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "uid")
    )
    op.create_index("ix_board_calendar_event_channel_start", "board_calendar_event",
                    ["channel", "start"])

    op.create_table("board_document_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("links", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("sender_name", sa.String(length=512), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["board_document.id"]),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id", "sha256"),
        sa.UniqueConstraint("document_id", "version")
    )
    op.create_index("ix_board_document_version_document_id", "board_document_version",
                    ["document_id"])

    op.create_table("board_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=512), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("sender_domain", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id")
    )
    op.create_index("ix_board_feedback_channel_status", "board_feedback", ["channel", "status"])
    op.create_index("ix_board_feedback_sender_domain", "board_feedback", ["sender_domain"])

    op.create_table("recipient_outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=512), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.String(length=1024), nullable=False),
        sa.Column("rule", sa.String(length=256), nullable=False),
        sa.Column("destination", sa.String(length=256), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_pk"], ["message.id"]),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_recipient_outcome_at", "recipient_outcome", ["at"])
    op.create_index("ix_recipient_outcome_message_pk", "recipient_outcome", ["message_pk"])
    op.create_index("ix_recipient_outcome_recipient", "recipient_outcome", ["recipient"])

    op.create_table("space_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("inline", sa.Boolean(), nullable=False),
        sa.Column("content_id", sa.String(length=998), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_space_attachment_post_sha", "space_attachment", ["post_id", "sha256"])

    op.create_table("space_comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=512), nullable=False),
        sa.Column("author_name", sa.String(length=512), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "fingerprint")
    )
    op.create_index("ix_space_comment_fingerprint", "space_comment", ["fingerprint"])
    op.create_index("ix_space_comment_message_id", "space_comment", ["message_id"])
    op.create_index("ix_space_comment_post_id", "space_comment", ["post_id"])

    op.create_table("space_post_recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=512), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "address")
    )
    op.create_index("ix_space_post_recipient_address_post", "space_post_recipient",
                    ["address", "post_id"])

    op.create_table("space_reaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=512), nullable=False),
        sa.Column("emoji", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "user", "emoji")
    )
    op.create_index("ix_space_reaction_post_id", "space_reaction", ["post_id"])

    op.create_table("space_read_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=512), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "user")
    )
    op.create_index("ix_space_read_mark_user_post", "space_read_mark",
                    ["user", "post_id", "read_at"])

    op.create_table("board_calendar_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["board_calendar_event.id"]),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "post_id")
    )
    op.create_index("ix_board_calendar_source_event_id", "board_calendar_source", ["event_id"])
    op.create_index("ix_board_calendar_source_post", "board_calendar_source", ["post_id"])

    op.create_table("board_document_send",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=512), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["space_post.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["board_document_version.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "post_id")
    )
    op.create_index("ix_board_document_send_post", "board_document_send", ["post_id"])
    op.create_index("ix_board_document_send_version_id", "board_document_send", ["version_id"])

    op.create_table("board_feedback_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=512), nullable=False),
        sa.Column("field", sa.String(length=16), nullable=False),
        sa.Column("old", sa.String(length=512), nullable=False),
        sa.Column("new", sa.String(length=512), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["board_feedback.id"]),
        sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_board_feedback_event_item_id", "board_feedback_event", ["item_id"])

    statements = SQLITE_SEARCH if op.get_bind().dialect.name == "sqlite" else POSTGRES_SEARCH
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP TABLE {SEARCH_TABLE}")
    op.drop_table("board_feedback_event")
    op.drop_table("board_document_send")
    op.drop_table("board_calendar_source")
    op.drop_table("space_read_mark")
    op.drop_table("space_reaction")
    op.drop_table("space_post_recipient")
    op.drop_table("space_comment")
    op.drop_table("space_attachment")
    op.drop_table("recipient_outcome")
    op.drop_table("board_feedback")
    op.drop_table("board_document_version")
    op.drop_table("board_calendar_event")
    op.drop_table("analysis_week")
    op.drop_table("analysis_category")
    op.drop_table("web_session")
    op.drop_table("watch_state")
    op.drop_table("user_rule")
    op.drop_table("stored_rules")
    op.drop_table("space_post")
    op.drop_table("space_channel")
    op.drop_table("sender_note")
    op.drop_table("rules_change")
    op.drop_table("policy_rule")
    op.drop_table("outbox_job")
    op.drop_table("message")
    op.drop_table("login_attempt")
    op.drop_table("ledger")
    op.drop_table("digest_item")
    op.drop_table("correction")
    op.drop_table("board_document")
    op.drop_table("blob")
    op.drop_table("app_user")
    op.drop_table("api_token")
    op.drop_table("analysis_run")
