"""Representative warehouse queries, written by hand per dialect: the raw baseline the pipeline is held to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchQuery:
    name: str
    sqlite: str
    postgres: str


# :ref is the reference date ('YYYY-MM-DD'), :subject one patient with many lab results.
QUERIES: tuple[BenchQuery, ...] = (
    BenchQuery(
        "census by unit on the reference date",
        """SELECT careunit, COUNT(DISTINCT subject_id) FROM transfers
           WHERE careunit IS NOT NULL AND intime <= :ref || ' 12:00:00'
             AND (outtime IS NULL OR outtime > :ref || ' 12:00:00')
           GROUP BY careunit ORDER BY careunit""",
        """SELECT careunit, COUNT(DISTINCT subject_id) FROM transfers
           WHERE careunit IS NOT NULL AND intime <= (%(ref)s::date + time '12:00')
             AND (outtime IS NULL OR outtime > (%(ref)s::date + time '12:00'))
           GROUP BY careunit ORDER BY careunit""",
    ),
    BenchQuery(
        "admissions and discharges per day, last 365 days",
        """SELECT day, SUM(adm), SUM(dis) FROM (
             SELECT date(admittime) AS day, 1 AS adm, 0 AS dis FROM admissions
             WHERE admittime >= date(:ref, '-365 day')
             UNION ALL
             SELECT date(dischtime), 0, 1 FROM admissions
             WHERE dischtime >= date(:ref, '-365 day')) AS t
           GROUP BY day ORDER BY day""",
        """SELECT day, SUM(adm), SUM(dis) FROM (
             SELECT admittime::date AS day, 1 AS adm, 0 AS dis FROM admissions
             WHERE admittime >= %(ref)s::date - 365
             UNION ALL
             SELECT dischtime::date, 0, 1 FROM admissions
             WHERE dischtime >= %(ref)s::date - 365) AS t
           GROUP BY day ORDER BY day""",
    ),
    BenchQuery(
        "average length of stay by department (unit stays, days)",
        """SELECT d.name, COUNT(*), AVG(julianday(t.outtime) - julianday(t.intime))
           FROM transfers t JOIN care_units u ON u.careunit = t.careunit
           JOIN departments d ON d.department_id = u.department_id
           WHERE t.outtime IS NOT NULL GROUP BY d.name ORDER BY d.name""",
        """SELECT d.name, COUNT(*), AVG(EXTRACT(EPOCH FROM t.outtime - t.intime) / 86400)
           FROM transfers t JOIN care_units u ON u.careunit = t.careunit
           JOIN departments d ON d.department_id = u.department_id
           WHERE t.outtime IS NOT NULL GROUP BY d.name ORDER BY d.name""",
    ),
    BenchQuery(
        "lab volume and median turnaround by test, last 90 days",
        """WITH tat AS (
             SELECT itemid, (julianday(storetime) - julianday(charttime)) * 1440 AS minutes
             FROM labevents WHERE charttime >= date(:ref, '-90 day') AND storetime IS NOT NULL),
           ranked AS (
             SELECT itemid, minutes,
                    ROW_NUMBER() OVER (PARTITION BY itemid ORDER BY minutes) AS rn,
                    COUNT(*) OVER (PARTITION BY itemid) AS n
             FROM tat)
           SELECT l.label, r.n, AVG(r.minutes) FROM ranked r JOIN d_labitems l ON l.itemid = r.itemid
           WHERE r.rn IN ((r.n + 1) / 2, (r.n + 2) / 2)
           GROUP BY l.label, r.n ORDER BY r.n DESC""",
        """SELECT l.label, COUNT(*), percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY EXTRACT(EPOCH FROM e.storetime - e.charttime) / 60)
           FROM labevents e JOIN d_labitems l ON l.itemid = e.itemid
           WHERE e.charttime >= %(ref)s::date - 90 AND e.storetime IS NOT NULL
           GROUP BY l.label ORDER BY COUNT(*) DESC""",
    ),
    BenchQuery(
        "one patient's lab history",
        """SELECT e.charttime, l.label, e.valuenum, e.valueuom, e.flag
           FROM labevents e JOIN d_labitems l ON l.itemid = e.itemid
           WHERE e.subject_id = :subject ORDER BY e.charttime, l.label""",
        """SELECT e.charttime, l.label, e.valuenum, e.valueuom, e.flag
           FROM labevents e JOIN d_labitems l ON l.itemid = e.itemid
           WHERE e.subject_id = %(subject)s ORDER BY e.charttime, l.label""",
    ),
)
