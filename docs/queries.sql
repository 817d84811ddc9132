-- lime-spark audit queries: the checks to run after each nightly run.
--
-- Every statement runs unchanged in Spark SQL (beeline or any JDBC client on
-- `lime-spark sql-server`, connected to the database given to --database, e.g.
-- jdbc:hive2://127.0.0.1:10000/audit) and in DuckDB (after the preamble of
-- docs/sql.md, which creates views named images, explanations and features over
-- the Parquet files). Table names are unqualified: the connection's database
-- (Spark) or the views (DuckDB) resolve them.
--
-- Parameters: each statement starts with a CTE `params`. As written it audits
-- the latest run, max(run_id) (run ids sort by time: the default run id is the
-- UTC start time, e.g. 20261123T190000Z). To audit another run, replace
--     SELECT max(run_id) AS run_id FROM images
-- by a literal, e.g.
--     SELECT 'nightly-2026-11-22' AS run_id
-- Query (e) also takes a label name (CAST(NULL AS STRING): each image's top label).
-- "The previous run" is the greatest run_id below the audited one.


-- (a) lowest_fit: the 20 images whose top label has the lowest explanation fit
-- (model_r2, lime's weighted R squared of the local surrogate): the explanations
-- least worth trusting. Low insertion AUC / high deletion AUC confirm it.
WITH params AS (
  SELECT max(run_id) AS run_id FROM images
)
SELECT e.image_id, i.path, e.label_name, e.label_prob, e.model_r2,
       e.deletion_auc, e.insertion_auc, e.overlay_uri
FROM explanations e
JOIN params p ON e.run_id = p.run_id
JOIN images i ON i.run_id = e.run_id AND i.image_id = e.image_id
WHERE e.label_rank = 1
ORDER BY e.model_r2 ASC NULLS FIRST, e.image_id
LIMIT 20;


-- (b) label_drift: the distribution of top labels in the run against the
-- previous run: images per label and their share of the run's explained images.
-- A label that appears, vanishes or moves a lot points at a model or data change.
WITH params AS (
  SELECT max(run_id) AS run_id FROM images
),
runs AS (
  SELECT p.run_id, max(i.run_id) AS previous_run_id
  FROM params p
  LEFT JOIN images i ON i.run_id < p.run_id
  GROUP BY p.run_id
),
current_counts AS (
  SELECT i.top_label_name AS label_name, count(*) AS images
  FROM images i
  JOIN runs r ON i.run_id = r.run_id
  WHERE i.status = 'ok'
  GROUP BY i.top_label_name
),
previous_counts AS (
  SELECT i.top_label_name AS label_name, count(*) AS images
  FROM images i
  JOIN runs r ON i.run_id = r.previous_run_id
  WHERE i.status = 'ok'
  GROUP BY i.top_label_name
),
totals AS (
  SELECT (SELECT sum(images) FROM current_counts) AS images,
         (SELECT sum(images) FROM previous_counts) AS previous_images
)
SELECT r.run_id, r.previous_run_id,
       coalesce(c.label_name, q.label_name) AS label_name,
       coalesce(c.images, 0) AS images,
       coalesce(q.images, 0) AS previous_images,
       CAST(coalesce(c.images, 0) AS DOUBLE) / t.images AS share,
       CAST(coalesce(q.images, 0) AS DOUBLE) / t.previous_images AS previous_share
FROM current_counts c
FULL OUTER JOIN previous_counts q ON c.label_name = q.label_name
CROSS JOIN runs r
CROSS JOIN totals t
ORDER BY images DESC, previous_images DESC, label_name;


-- (c) label_mismatch: images whose top label differs from the expected label
-- given in the input (column `label`, kept as images.expected_label; a class
-- name or index), most confident mistakes first, with the rank and probability
-- the model gave the expected label when it was among the explained labels.
WITH params AS (
  SELECT max(run_id) AS run_id FROM images
)
SELECT i.image_id, i.path, i.expected_label, i.top_label_name, i.top_prob,
       e.label_rank AS expected_label_rank, e.label_prob AS expected_label_prob
FROM images i
JOIN params p ON i.run_id = p.run_id
LEFT JOIN explanations e
  ON e.run_id = i.run_id AND e.image_id = i.image_id
  AND (e.label_name = i.expected_label OR CAST(e.label AS STRING) = i.expected_label)
WHERE i.status = 'ok'
  AND i.expected_label IS NOT NULL
  AND i.expected_label NOT IN (i.top_label_name, CAST(i.top_label AS STRING))
ORDER BY i.top_prob DESC, i.image_id;


-- (d) errors: the images that failed (status 'error'), grouped by error class,
-- the most frequent class first; class_images counts the images of each class.
WITH params AS (
  SELECT max(run_id) AS run_id FROM images
)
SELECT i.error_class,
       count(*) OVER (PARTITION BY i.error_class) AS class_images,
       i.image_id, i.path, i.error_message
FROM images i
JOIN params p ON i.run_id = p.run_id
WHERE i.status = 'error'
ORDER BY class_images DESC, i.error_class, i.image_id;


-- (e) top_superpixels: for a given label (params.label_name; NULL: each image's
-- top label), the superpixels that carry most of the evidence for it: per
-- image, the fewest superpixels, by decreasing weight, that together carry at
-- least half of the positive weight. weight_share is a superpixel's part of the
-- image's positive weight, area_share its part of the image's pixels; the bbox
-- (half-open, original pixels) locates it.
WITH params AS (
  SELECT r.run_id, CAST(NULL AS STRING) AS label_name
  FROM (SELECT max(run_id) AS run_id FROM images) r
),
chosen AS (
  SELECT e.run_id, e.image_id, e.label, e.label_name
  FROM explanations e
  JOIN params p ON e.run_id = p.run_id
  WHERE e.label_name = p.label_name OR (p.label_name IS NULL AND e.label_rank = 1)
),
positive AS (
  SELECT f.image_id, c.label_name, f.feature, f.feature_rank, f.feature_weight,
         f.pixel_count, f.bbox_x0, f.bbox_y0, f.bbox_x1, f.bbox_y1,
         CAST(i.width AS DOUBLE) * i.height AS image_pixels,
         f.feature_weight / sum(f.feature_weight) OVER (PARTITION BY f.image_id) AS weight_share,
         sum(f.feature_weight) OVER (
           PARTITION BY f.image_id ORDER BY f.feature_weight DESC, f.feature
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
         ) / sum(f.feature_weight) OVER (PARTITION BY f.image_id) AS cumulative_share
  FROM features f
  JOIN chosen c ON f.run_id = c.run_id AND f.image_id = c.image_id AND f.label = c.label
  JOIN images i ON i.run_id = f.run_id AND i.image_id = f.image_id
  WHERE f.feature_weight > 0
)
SELECT image_id, label_name, feature, feature_rank, feature_weight, weight_share,
       cumulative_share, pixel_count / image_pixels AS area_share,
       bbox_x0, bbox_y0, bbox_x1, bbox_y1
FROM positive
WHERE cumulative_share - weight_share < 0.5
ORDER BY image_id, cumulative_share, feature;
