namespace Turbine.Server.Tests.Configuration;

/// <summary>Config texts in the style users deploy today: TensorRT-LLM templates filled by fill_template.py or sed.</summary>
internal static class SeedConfigs
{
    // tensorrt_llm/config.pbtxt as left by the seeds' fill_template.py command line (003): filled keys, others still
    // placeholders; tabs, '#' comments inside the input list, "kind : KIND_CPU" with a space, capitalised True.
    public const string TensorRtLlm = """
        # Copyright header as in the template
        name: "tensorrt_llm"
        backend: "tensorrtllm"
        max_batch_size: 8

        model_transaction_policy {
          decoupled: True
        }

        dynamic_batching {
            preferred_batch_size: [ 8 ]
            max_queue_delay_microseconds: 600
        }

        input [
          {
            name: "input_ids"
            data_type: TYPE_INT32
            dims: [ -1 ]
            allow_ragged_batch: true
          },
          {
            name: "input_lengths"
            data_type: TYPE_INT32
            dims: [ 1 ]
            reshape: { shape: [ ] }
          },
          {
            name: "request_output_len"
            data_type: TYPE_INT32
            dims: [ 1 ]
          },
          # the unique task ID for the given LoRA.
          {
            name: "lora_task_id"
        	data_type: TYPE_UINT64
        	dims: [ 1 ]
            reshape: { shape: [ ] }
        	optional: true
          }
        ]
        output [
          {
            name: "output_ids"
            data_type: TYPE_INT32
            dims: [ -1, -1 ]
          },
          {
            name: "sequence_length"
            data_type: TYPE_INT32
            dims: [ -1 ]
          }
        ]
        instance_group [
          {
            count: 1
            kind : KIND_CPU
          }
        ]
        parameters: {
          key: "max_beam_width"
          value: {
            string_value: "1"
          }
        }
        parameters: {
          key: "gpt_model_type"
          value: {
            string_value: "inflight_batching"
          }
        }
        parameters: {
          key: "gpt_model_path"
          value: {
            string_value: "ENGINE_DIR"
          }
        }
        parameters: {
          key: "max_tokens_in_paged_kv_cache"
          value: {
            string_value: "2560"
          }
        }
        parameters: {
          key: "max_attention_window_size"
          value: {
            string_value: "2560"
          }
        }
        parameters: {
          key: "batch_scheduler_policy"
          value: {
            string_value: "${batch_scheduler_policy}"
          }
        }
        parameters: {
          key: "kv_cache_free_gpu_mem_fraction"
          value: {
            string_value: "0.5"
          }
        }
        parameters: {
          key: "exclude_input_in_output"
          value: {
            string_value: "True"
          }
        }
        parameters: {
          key: "enable_kv_cache_reuse"
          value: {
            string_value: "False"
          }
        }
        parameters: {
          key: "max_queue_delay_microseconds"
          value: {
            string_value: "600"
          }
        }
        parameters: {
          key: "kv_cache_host_memory_bytes"
          value: {
            string_value: "${kv_cache_host_memory_bytes}"
          }
        }
        """;

    // preprocessing/config.pbtxt after the seeds' sed commands (002), older template with required word lists.
    public const string Preprocessing = """
        name: "preprocessing"
        backend: "python"
        max_batch_size: 128
        input [
            {
                name: "QUERY"
                data_type: TYPE_STRING
                dims: [ -1 ]
            },
            {
                name: "REQUEST_OUTPUT_LEN"
                data_type: TYPE_UINT32
                dims: [ -1 ]
            }
        ]
        output [
            {
                name: "INPUT_ID"
                data_type: TYPE_INT32
                dims: [ -1 ]
            },
            {
                name: "REQUEST_INPUT_LEN"
                data_type: TYPE_INT32
                dims: [ 1 ]
            },
            {
                name: "REQUEST_OUTPUT_LEN"
                data_type: TYPE_UINT32
                dims: [ -1 ]
            }
        ]

        parameters {
          key: "tokenizer_dir"
          value: {
            string_value: "TOKENIZER_DIR"
          }
        }

        parameters {
          key: "tokenizer_type"
          value: {
            string_value: "auto"
          }
        }

        instance_group [
            {
                count: 1
                kind: KIND_CPU
            }
        ]
        """;

    public const string Postprocessing = """
        name: "postprocessing"
        backend: "python"
        max_batch_size: 128
        input [
          {
            name: "TOKENS_BATCH"
            data_type: TYPE_INT32
            dims: [ -1, -1 ]
          }
        ]
        output [
          {
            name: "OUTPUT"
            data_type: TYPE_STRING
            dims: [ -1, -1 ]
          }
        ]
        parameters {
          key: "tokenizer_dir"
          value: {
            string_value: "TOKENIZER_DIR"
          }
        }
        instance_group [ { count: 1, kind: KIND_CPU } ]
        """;

    // ensemble/config.pbtxt with nested steps, map entries, and the stray comma after an output_map entry that the
    // real template carries.
    public const string Ensemble = """
        name: "ensemble"
        platform: "ensemble"
        max_batch_size: 8
        input [
          {
            name: "text_input"
            data_type: TYPE_STRING
            dims: [ -1 ]
          },
          {
            name: "max_tokens"
            data_type: TYPE_UINT32
            dims: [ -1 ]
          }
        ]
        output [
          {
            name: "text_output"
            data_type: TYPE_STRING
            dims: [ -1, -1 ]
          }
        ]
        ensemble_scheduling {
          step [
            {
              model_name: "preprocessing"
              model_version: -1
              input_map {
                key: "QUERY"
                value: "text_input"
              }
              input_map {
                key: "REQUEST_OUTPUT_LEN"
                value: "max_tokens"
              }
              output_map {
                key: "REQUEST_INPUT_LEN"
                value: "_REQUEST_INPUT_LEN"
              }
              output_map {
                key: "INPUT_ID"
                value: "_INPUT_ID"
              },
              output_map {
                key: "REQUEST_OUTPUT_LEN"
                value: "_REQUEST_OUTPUT_LEN"
              }
            },
            {
              model_name: "tensorrt_llm"
              model_version: -1
              input_map {
                key: "input_ids"
                value: "_INPUT_ID"
              }
              input_map {
                key: "input_lengths"
                value: "_REQUEST_INPUT_LEN"
              }
              input_map {
                  key: "request_output_len"
                  value: "_REQUEST_OUTPUT_LEN"
              }
              output_map {
                key: "output_ids"
                value: "_TOKENS_BATCH"
              }
            },
            {
              model_name: "postprocessing"
              model_version: -1
              input_map {
                key: "TOKENS_BATCH"
                value: "_TOKENS_BATCH"
              }
              output_map {
                key: "OUTPUT"
                value: "text_output"
              }
            }
          ]
        }
        """;
}
